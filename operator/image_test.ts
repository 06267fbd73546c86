import assert from "node:assert/strict";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import {
  findDenoBinary,
  ImageContextError,
  operatorImageContext,
  parseLdd,
  sharedLibraries,
} from "./image.ts";

const ROOT = new URL("..", import.meta.url).pathname;

const LDD_BOOKWORM = `	linux-vdso.so.1 (0x00007ffd6a5f2000)
	libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f7c50ca8000)
	libgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f7c50c88000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f7c4ab3e000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f7c50cc0000)
`;

Deno.test("parseLdd() lists libraries and the loader, without the vDSO", () => {
  assert.deepEqual(parseLdd(LDD_BOOKWORM, "deno"), [
    "/lib/x86_64-linux-gnu/libdl.so.2",
    "/lib/x86_64-linux-gnu/libgcc_s.so.1",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/ld-linux-x86-64.so.2",
  ]);
  assert.deepEqual(parseLdd("\tlinux-vdso.so.1 =>  (0x00007ffd6a5f2000)\n", "deno"), []);
  assert.deepEqual(parseLdd("\tstatically linked\n", "deno"), []);
});

Deno.test("parseLdd() refuses a missing library and output it does not understand", () => {
  assert.throws(
    () => parseLdd(`${LDD_BOOKWORM}\tlibfoo.so.1 => not found\n`, "/x/deno"),
    (error: unknown) =>
      error instanceof ImageContextError && error.path === "/x/deno" &&
      error.message.includes('"libfoo.so.1"'),
  );
  assert.throws(() => parseLdd("something else\n", "deno"), ImageContextError);
});

Deno.test("sharedLibraries() resolves the host deno's libraries with ldd", async () => {
  const libraries = await sharedLibraries(Deno.execPath());
  assert.ok(libraries.length > 0);
  assert.ok(libraries.every((l) => l.startsWith("/")));
  assert.ok(libraries.some((l) => /\/libc\.so\.6$/.test(l)), libraries.join(" "));
  assert.ok(libraries.some((l) => /\/ld-linux[^/]*\.so\.\d$/.test(l)), libraries.join(" "));
});

Deno.test("operatorImageContext() refuses missing files and non-executables", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-image-" });
  try {
    await Deno.writeTextFile(`${dir}/fleet.js`, "console.log(1);\n");
    await assert.rejects(
      operatorImageContext({ denoBinary: `${dir}/nope`, bundle: `${dir}/fleet.js` }),
      (error: unknown) =>
        error instanceof ImageContextError && error.path === `${dir}/nope` &&
        /does not exist/.test(error.message),
    );
    await assert.rejects(
      operatorImageContext({ denoBinary: `${dir}/fleet.js`, bundle: `${dir}/fleet.js` }),
      /not a 64-bit ELF executable/,
    );
    await assert.rejects(
      operatorImageContext({ denoBinary: Deno.execPath(), bundle: `${dir}/missing.js` }),
      /the bundle does not exist/,
    );
    await assert.rejects(
      operatorImageContext({
        denoBinary: Deno.execPath(),
        bundle: `${dir}/fleet.js`,
        version: 'x" evil',
      }),
      TypeError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The deno of the npm package `@deno/linux-x64-glibc` when found, else the running one. */
async function denoBinary(): Promise<string> {
  return await findDenoBinary() ?? Deno.execPath();
}

async function bundle(dir: string): Promise<string> {
  const output = `${dir}/fleet.js`;
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--output", output, "main.ts"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(result.stderr).trim();
  assert.ok(result.success, `deno bundle failed: ${stderr}`);
  return output;
}

Deno.test("operatorImageContext() lays out runtime, libraries and bundle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-image-" });
  try {
    await Deno.writeTextFile(`${dir}/fleet.js`, "console.log(1);\n");
    const deno = await denoBinary();
    const context = await operatorImageContext({
      denoBinary: deno,
      bundle: `${dir}/fleet.js`,
      version: "1.2.3",
    });
    const libraries = await sharedLibraries(deno);
    assert.deepEqual(
      Object.keys(context.files).sort(),
      [
        "app/fleet.js",
        "runtime/usr/bin/deno",
        ...libraries.map((l) => `runtime${l}`),
      ].sort(),
    );
    assert.equal(context.fileModes["runtime/usr/bin/deno"], 0o755);
    assert.equal(context.fileModes["app/fleet.js"], 0o644);
    assert.equal(context.files["runtime/usr/bin/deno"]?.length, (await Deno.stat(deno)).size);

    const lines = context.containerfile.split("\n");
    assert.ok(lines.includes("FROM scratch"));
    assert.ok(lines.includes("USER 65532"));
    assert.ok(!context.containerfile.includes("passwd"));
    assert.ok(lines.includes("ENV DENO_DIR=/tmp/deno \\"));
    assert.ok(
      lines.includes('ENTRYPOINT ["/usr/bin/deno", "run", "-A", "--no-config", "/app/fleet.js"]'),
    );
    assert.ok(lines.includes('CMD ["operator", "run", "--source", "kube"]'));
    assert.match(context.containerfile, /org\.opencontainers\.image\.title="fleet-operator"/);
    assert.match(context.containerfile, /org\.opencontainers\.image\.version="1\.2\.3"/);
    const custom = await operatorImageContext({
      denoBinary: deno,
      bundle: `${dir}/fleet.js`,
      user: 1001,
    });
    assert.ok(custom.containerfile.split("\n").includes("USER 1001"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Polls until the container has exited; returns its exit code. */
async function exitCode(client: PodmanClient, id: string, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const container = await client.inspectContainer(id);
    assert.ok(container !== undefined, `container ${id} is gone`);
    if (container.state === "exited" || container.state === "stopped") {
      return container.exitCode;
    }
    assert.ok(container.error === undefined || container.error === "", container.error);
    if (Date.now() > deadline) {
      throw new Error(`Container ${id} still "${container.state}" after ${timeoutMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

Deno.test("operatorImageContext() builds an image that runs the program FROM scratch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-image-" });
  await using service = await startPodmanService();
  using client = new PodmanClient({ socketPath: service.socketPath });
  const suffix = crypto.randomUUID().slice(0, 8);
  const tag = `localhost/fleet-operator:test-${suffix}`;
  const containers: string[] = [];
  try {
    const context = await operatorImageContext({
      denoBinary: await denoBinary(),
      bundle: await bundle(dir),
    });
    const started = performance.now();
    await client.buildImage({ tags: [tag], ...context });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const size = Object.values(context.files).reduce((sum, f) => sum + f.length, 0);
    console.log(`built ${tag} (${(size / 2 ** 20).toFixed(1)} MiB of files) in ${seconds} s`);

    const image = await client.inspectImage(tag);
    assert.ok(image !== undefined);
    assert.equal(image.labels["org.opencontainers.image.title"], "fleet-operator");

    const run = async (name: string, args: string[]) => {
      const id = await client.createContainer({
        name: `fleet-operator-test-${suffix}-${name}`,
        image: tag,
        labels: {},
        env: {},
        ports: [],
        volumes: [],
        restartPolicy: "no",
        args,
      });
      containers.push(id);
      await client.startContainer(id);
      return await exitCode(client, id);
    };
    // --version runs the whole module graph; an unknown command is a usage error (2).
    const [version, usage] = await Promise.all([
      run("version", ["--version"]),
      run("usage", ["frobnicate"]),
    ]);
    assert.equal(version, 0, "fleet --version in the image");
    assert.equal(usage, 2, "fleet frobnicate in the image");
  } finally {
    for (const id of containers) await client.removeContainer(id);
    await client.removeImage(tag);
    await Deno.remove(dir, { recursive: true });
  }
});
