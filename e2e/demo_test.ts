/**
 * `deno task demo`, the README's front door, as a person runs it in a terminal: a job in its
 * own process group. Ctrl-C (SIGINT), closing the terminal (SIGHUP) and SIGTERM go to the whole
 * group, so the demo's helper processes (nats-server, the podman service) receive them too; the
 * demo must still remove its containers through its podman service and leave nothing behind.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ContainerLabels, MANAGED_BY } from "../core/mod.ts";
import { DEMO_DEVICES } from "../sandbox/demo.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { waitFor, withDeadline } from "../adapters/timers.ts";
import { stopOnDeadline, story } from "./_story.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The first run builds the test images; later ones are up in seconds. */
const UP_MS = 180_000;
/** Stopping agents, operator and helpers and removing two containers takes a few seconds. */
const CLEANUP_MS = 60_000;

interface Proc {
  pid: number;
  ppid: number;
  cmdline: string;
}

/** `pid`'s command line, or undefined once it is gone (a zombie has an empty one). */
function cmdline(pid: number): string | undefined {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
    return text === "" ? undefined : text;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Every process under `root`, found through the parent ids in /proc. */
function descendants(root: number): Proc[] {
  const children = new Map<number, number[]>();
  const parents = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue; // exited meanwhile
      throw error;
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...children.get(ppid) ?? [], Number(entry.name)]);
    parents.set(Number(entry.name), ppid);
  }
  const found: Proc[] = [];
  const queue = [...children.get(root) ?? []];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    const line = cmdline(pid);
    if (line !== undefined) found.push({ pid, ppid: parents.get(pid) ?? 0, cmdline: line });
    queue.push(...children.get(pid) ?? []);
  }
  return found;
}

/** `deno task demo [args]`, as the README writes it. */
const task = (...args: string[]) => ["deno", "task", "demo", ...args];
/**
 * `deno task demo` on a terminal of its own: script(1) gives it a pseudo-terminal and holds the
 * terminal's side of it, so killing script closes the terminal.
 */
const ON_A_TERMINAL = ["script", "--quiet", "--flush", "--command", "deno task demo", "/dev/null"];

/** A command started as a shell starts a job: its own process group, output collected. */
class Demo implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;
  #running = true;
  #output = "";
  readonly #read: Promise<unknown>;
  readonly #hangUp = new AbortController();

  constructor(tmp: string, [program, ...args]: string[]) {
    this.child = new Deno.Command(program!, {
      args,
      cwd: ROOT,
      // setsid(): a new session and process group whose id is the child's pid, so a signal to
      // -pid reaches every process of the job, as the terminal's Ctrl-C does.
      detached: true,
      env: { TMPDIR: tmp, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.child.status.finally(() => this.#running = false);
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const signal = this.#hangUp.signal;
      try {
        for await (const text of stream.pipeThrough(new TextDecoderStream(), { signal })) {
          this.#output += text;
        }
      } catch (error) {
        if (!signal.aborted) throw error;
      }
    };
    this.#read = Promise.all([collect(this.child.stdout), collect(this.child.stderr)]);
  }

  get output(): string {
    return this.#output;
  }

  /** Stops reading its output, as a closed terminal does: its writes fail from then on. */
  hangUp(): void {
    this.#hangUp.abort();
  }

  /** The exit status, once the output is read to its end. */
  async exited(): Promise<Deno.CommandStatus> {
    const status = await withDeadline(
      this.status,
      CLEANUP_MS,
      `the demo did not exit within ${CLEANUP_MS / 1000} s; its output:\n${this.#output}`,
    );
    await this.#read;
    return status;
  }

  /** Past a failed assertion: the whole group, hard. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#running) Deno.kill(-this.child.pid, "SIGKILL");
    await this.status;
    await this.#read;
  }
}

const demoContainers = async (podman: PodmanClient) =>
  (await Promise.all(DEMO_DEVICES.map((d) =>
    podman.listContainers({
      [ContainerLabels.managedBy]: MANAGED_BY,
      [ContainerLabels.deviceId]: d.deviceId,
    })
  ))).flat();

/** Those of `procs` still running. */
const alive = (procs: Proc[]) => procs.filter((p) => cmdline(p.pid) === p.cmdline);

/** The private podman service's socket dir, from its command line. */
const socketDir = (helpers: Proc[]) =>
  helpers.map((p) => /unix:\/\/(\S+)\/podman\.sock/.exec(p.cmdline)?.[1])
    .find((dir) => dir !== undefined);

interface Run {
  demo: Demo;
  /** The demo's own process (`deno run ... main.ts demo`). */
  program: Proc;
  podman: PodmanClient;
  tmp: string;
  /** The demo's nats-server and podman service. */
  helpers: Proc[];
}

/**
 * Starts `command` (the demo) with its own TMPDIR, waits for `ready` in its output, finds its
 * processes and hands over to `fn`; whatever a failure leaves is removed after.
 */
async function withDemo(
  command: string[],
  ready: RegExp,
  fn: (run: Run) => Promise<void>,
): Promise<void> {
  await using podmanService = stopOnDeadline(await startPodmanService());
  using podman = new PodmanClient({ socketPath: podmanService.socketPath });
  const tmp = await Deno.makeTempDir({ prefix: "fleet-demo-test-" });
  /** The demo's processes: its own and its helpers. */
  let started: Proc[] = [];
  try {
    await using demo = stopOnDeadline(new Demo(tmp, command));
    await waitFor(`the demo to print ${ready}`, () => ready.test(demo.output) || undefined, UP_MS)
      .catch((error) => {
        throw new Error(`${(error as Error).message}; its output:\n${demo.output}`);
      });
    const processes = descendants(demo.child.pid);
    const program = processes.find((p) => / main\.ts demo/.test(p.cmdline));
    assert.ok(program, `the demo's own process: ${JSON.stringify(processes)}`);
    // Started by the demo itself: podman may re-exec itself under its service for a moment.
    const helpers = processes.filter((p) =>
      p.ppid === program.pid && /nats-server|podman system service/.test(p.cmdline)
    );
    started = [program, ...helpers];
    assert.equal(helpers.length, 2, `nats-server and podman: ${JSON.stringify(processes)}`);
    await fn({ demo, program, podman, tmp, helpers });
  } finally {
    // A failed run must not leave its processes and containers to the next one.
    for (const p of alive(started)) Deno.kill(p.pid, "SIGKILL");
    for (const c of await demoContainers(podman)) await podman.removeContainer(c.id);
    await Deno.remove(tmp, { recursive: true });
    const dir = socketDir(started);
    // Gone after a clean exit; left by a killed demo.
    if (dir) {
      await Deno.remove(dir, { recursive: true }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    }
  }
}

/** After the demo exited: exit 0, and no container, helper process or temp dir of it left. */
async function assertCleanExit(run: Run): Promise<void> {
  const status = await run.demo.exited();
  assert.equal(status.code, 0, `exit code; the demo's output:\n${run.demo.output}`);
  await assertNothingLeft(run);
}

/** No container, helper process or temp dir of the demo is left. */
async function assertNothingLeft({ podman, tmp, helpers }: Run): Promise<void> {
  assert.deepEqual(await demoContainers(podman), [], "the demo's containers are removed");
  assert.deepEqual(alive(helpers), [], "the helper processes have stopped");
  assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name), [], "temp dirs removed");
  const dir = socketDir(helpers);
  assert.ok(dir, "the podman service's socket dir");
  await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  story(
    `deno task demo: ${signal} to its process group ends it with exit 0, no container, helper or temp dir left`,
    () =>
      withDemo(task(), /Press Ctrl-C/, async (run) => {
        const running = await demoContainers(run.podman);
        assert.deepEqual(running.map((c) => c.state), ["running", "running"]);
        Deno.kill(-run.demo.child.pid, signal);
        // A hang-up means the terminal is gone: from then on, printing fails.
        if (signal === "SIGHUP") run.demo.hangUp();
        await assertCleanExit(run);
      }),
  );
}

story(
  "deno task demo: Ctrl-C while the fleet comes up stops it after the step under way, nothing left",
  () =>
    withDemo(task(), /==> Apply deployment/, async (run) => {
      Deno.kill(-run.demo.child.pid, "SIGINT");
      await assertCleanExit(run);
      assert.match(run.demo.output, /==> Stopped before "/);
      assert.doesNotMatch(run.demo.output, /The fleet is running/);
    }),
);

story(
  "deno task demo: SIGKILLed, its helpers stop with it, and the next demo removes the containers it left",
  () =>
    withDemo(task(), /Press Ctrl-C/, async (run) => {
      const left = await demoContainers(run.podman);
      assert.equal(left.length, 2);
      // The demo process alone (as the OOM killer or `kill -9 PID` does), not its group.
      Deno.kill(run.program.pid, "SIGKILL");
      await run.demo.exited();
      await waitFor("the helpers to stop", () => alive(run.helpers).length === 0 || undefined);
      assert.deepEqual(
        (await demoContainers(run.podman)).map((c) => c.id).sort(),
        left.map((c) => c.id).sort(),
        "no cleanup ran: the containers are still there",
      );

      await withDemo(task("--auto"), /==> Build the local test images/, async (next) => {
        await assertCleanExit(next);
        assert.match(next.demo.output, /removed 2 containers a killed demo had left/);
      });
    }),
);

story(
  "deno task demo: the commands it prints for another terminal work as written",
  () =>
    withDemo(task(), /Press Ctrl-C/, async (run) => {
      const commands = run.demo.output.split("\n").map((l) => l.trim())
        .filter((l) => l.startsWith("deno task fleet "));
      // get devices, get deployments --watch, apply (the image update).
      const expected = [/pi-shop-1\s+yes/, /demo\s+hello\s+1\s+2\s+2/, /demo\/hello configured/];
      assert.equal(commands.length, expected.length, run.demo.output);
      for (const [i, command] of commands.entries()) {
        const [program, ...args] = command.split(" ");
        const child = new Deno.Command(program!, {
          args,
          cwd: ROOT,
          env: { NO_COLOR: "1" },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const stderr = new Response(child.stderr).text();
        let stdout = "";
        let stopped = !args.includes("--watch");
        for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
          stdout += text;
          // `get --watch` runs until stopped: its user stops it once the table is there.
          if (!stopped && expected[i]!.test(stdout)) {
            child.kill("SIGINT");
            stopped = true;
          }
        }
        const status = await child.status;
        assert.equal(status.code, 0, `${command}:\n${await stderr}`);
        assert.match(stdout, expected[i]!, command);
      }
      Deno.kill(-run.demo.child.pid, "SIGINT");
      await assertCleanExit(run);
    }),
);

story(
  "deno task demo: closing its terminal (SIGHUP, then nothing to print to) leaves nothing",
  () =>
    withDemo(ON_A_TERMINAL, /Press Ctrl-C/, async (run) => {
      run.demo.child.kill("SIGKILL"); // the terminal window goes away
      await waitFor(
        "the demo to end",
        () => alive([run.program]).length === 0 || undefined,
        CLEANUP_MS,
      );
      await assertNothingLeft(run);
    }),
);
