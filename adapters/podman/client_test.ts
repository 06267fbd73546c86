import assert from "node:assert/strict";
import { PodmanClient } from "./client.ts";
import { PodmanError, PodmanUnavailableError } from "./errors.ts";
import { startPodmanService } from "../../sandbox/podman_service.ts";
import { ensureTestImage } from "../../sandbox/local_image.ts";
import { eventually } from "../../testing/eventually.ts";
import { concat } from "../../core/device_sessions.ts";
import { testContainerSpec, uniqueContainerName } from "../../testing/containers.ts";

// One tag for every test in this file: built once, then reused from shared storage.
const TAG = "adapter-test";

function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

Deno.test("PodmanClient.ping() and version() answer on a fresh service", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  await client.ping();
  const { version, apiVersion } = await client.version();
  assert.match(version, /^[45]\./);
  assert.match(apiVersion, /^[45]\./);
});

Deno.test("PodmanClient runs a labelled container with a published port through its lifecycle", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  assert.equal(image, `localhost/fleet-test:${TAG}`);
  assert.ok(await client.imageExists(image));

  const name = uniqueContainerName("fleet-lifecycle");
  const label = { "fleet.test/run": name };
  const port = freeLoopbackPort();
  let id: string | undefined;
  try {
    id = await client.createContainer(testContainerSpec(name, image, {
      labels: label,
      env: { GREETING: "hello" },
      ports: [{ hostPort: port, containerPort: 80, protocol: "tcp", hostIp: "127.0.0.1" }],
    }));
    const created = await client.listContainers(label);
    assert.equal(created.length, 1);
    assert.equal(created[0]?.state, "created");
    assert.equal(created[0]?.startedAt, undefined);

    await client.startContainer(id);
    await client.startContainer(id); // already running: not an error
    const page = await eventually("the page", async () => {
      const response = await fetch(`http://127.0.0.1:${port}/`);
      const text = await response.text();
      assert.equal(response.status, 200);
      return text;
    });
    assert.equal(page, `fleet-test ${TAG}\n`);

    const [listed, ...others] = await client.listContainers(label);
    assert.equal(others.length, 0);
    assert.ok(listed);
    assert.equal(listed.id, id);
    assert.equal(listed.name, name);
    assert.equal(listed.image, image);
    assert.equal(listed.state, "running");
    assert.equal(listed.labels["fleet.test/run"], name);
    assert.ok(listed.startedAt && Math.abs(listed.startedAt - Date.now()) < 60_000);
    // Several labels must all match.
    assert.deepEqual(await client.listContainers({ ...label, "fleet.test/other": "x" }), []);

    // The trap in the image exits 0 on SIGTERM: exit code 0, not 137 (SIGKILL), shows the stop
    // ended gracefully instead of at the 10 s kill timeout. (bench/podman.ts times it.)
    await client.stopContainer(id, 10);
    await client.stopContainer(id, 10); // already stopped: not an error

    const stopped = await client.inspectContainer(id);
    assert.equal(stopped?.state, "exited");
    assert.equal(stopped?.exitCode, 0);
    assert.ok(stopped?.finishedAt !== undefined);

    await client.removeContainer(id);
    assert.deepEqual(await client.listContainers(label), []);
    assert.equal(await client.inspectContainer(id), undefined);
    id = undefined;
  } finally {
    if (id !== undefined) await client.removeContainer(id);
  }
});

Deno.test("PodmanClient.createContainer() passes env, bind mounts, entrypoint and args", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const dir = await Deno.makeTempDir({ prefix: "fleet-podman-mount-" });
  const name = uniqueContainerName("fleet-spec");
  try {
    await Deno.writeTextFile(`${dir}/in.txt`, "from host");
    await Deno.mkdir(`${dir}/out`);
    const id = await client.createContainer(testContainerSpec(name, image, {
      env: { GREETING: "hello" },
      volumes: [
        { hostPath: `${dir}/in.txt`, containerPath: "/in.txt", readOnly: true },
        { hostPath: `${dir}/out`, containerPath: "/out", readOnly: false },
      ],
      command: ["/bin/sh", "-c"],
      args: ['cat /in.txt > /out/copy; echo "$GREETING" > /out/env; echo x > /in.txt || exit 3'],
    }));
    await client.startContainer(id);
    const exited = await eventually("the container to exit", async () => {
      const state = await client.inspectContainer(id);
      assert.equal(state?.state, "exited");
      return state;
    });
    assert.equal(exited?.exitCode, 3, "the read-only mount was writable");
    assert.equal(await Deno.readTextFile(`${dir}/out/copy`), "from host");
    assert.equal(await Deno.readTextFile(`${dir}/out/env`), "hello\n");
  } finally {
    await client.removeContainer(name);
    await Deno.remove(dir, { recursive: true });
  }
});

/** Reads a cgroup file, v2 name first, then v1 (`controller/file`). */
function cgroupRead(v2: string, v1: string): string {
  return `(cat /sys/fs/cgroup/${v2} 2>/dev/null || cat /sys/fs/cgroup/${v1})`;
}

Deno.test("PodmanClient.createContainer() sets memory, CPU and process limits, and shares host namespaces and privileges only when asked, as containerGrants() reads back", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const dir = await Deno.makeTempDir({ prefix: "fleet-podman-limits-" });
  const report = [
    cgroupRead("memory.max", "memory/memory.limit_in_bytes"),
    cgroupRead("pids.max", "pids/pids.max"),
    cgroupRead("cpu.max", "cpu/cpu.cfs_quota_us"),
    "readlink /proc/self/ns/net",
    "readlink /proc/self/ns/pid",
    "grep CapEff /proc/self/status",
  ].map((line) => `${line} >> /out/report`).join("; ");
  const run = async (name: string, extra: Parameters<typeof testContainerSpec>[2]) => {
    await Deno.writeTextFile(`${dir}/report`, "");
    const id = await client.createContainer(testContainerSpec(name, image, {
      volumes: [{ hostPath: dir, containerPath: "/out", readOnly: false }],
      command: ["/bin/sh", "-c"],
      args: [report],
      ...extra,
    }));
    try {
      await client.startContainer(id);
      await eventually("the container to exit", async () => {
        const state = await client.inspectContainer(id);
        return state?.state === "exited";
      });
      const grants = await client.containerGrants(id);
      return { lines: (await Deno.readTextFile(`${dir}/report`)).trim().split("\n"), grants };
    } finally {
      await client.removeContainer(id);
    }
  };
  const hostNet = await Deno.readLink("/proc/self/ns/net");
  const hostPid = await Deno.readLink("/proc/self/ns/pid");
  try {
    const { lines: limited, grants: ordinary } = await run(uniqueContainerName("fleet-limits"), {
      limits: { memoryMb: 64, cpus: 0.5, pids: 100 },
    });
    assert.deepEqual(ordinary, {
      mounts: [{ hostPath: dir, readOnly: false }],
      privileged: false,
      hostNetwork: false,
      hostPid: false,
    });
    assert.deepEqual(limited.slice(0, 2), [String(64 * 1024 * 1024), "100"]);
    assert.match(limited[2]!, /^50000\b/, "half of each 100 ms period");
    assert.notEqual(limited[3], hostNet, "own network namespace by default");
    assert.notEqual(limited[4], hostPid, "own PID namespace by default");

    const { lines: shared, grants } = await run(uniqueContainerName("fleet-hostns"), {
      hostNetwork: true,
      hostPid: true,
      privileged: true,
    });
    assert.deepEqual(
      {
        privileged: grants?.privileged,
        hostNetwork: grants?.hostNetwork,
        hostPid: grants?.hostPid,
      },
      { privileged: true, hostNetwork: true, hostPid: true },
    );
    assert.equal(shared[3], hostNet);
    assert.equal(shared[4], hostPid);
    const capabilities = (line: string | undefined) => BigInt(`0x${line!.split(/\s+/)[1]}`);
    assert.ok(
      capabilities(shared[5]) > capabilities(limited[5]),
      `privileged has every capability: ${shared[5]} vs ${limited[5]}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PodmanClient.stopContainer() sends SIGTERM, then kills a container that ignores it; removeContainer() kills at once", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const dir = await Deno.makeTempDir({ prefix: "fleet-podman-stubborn-" });
  const name = uniqueContainerName("fleet-stubborn");
  try {
    // Notes every SIGTERM in /out/term and carries on (`wait` returns at once on a trapped
    // signal, a foreground sleep would delay the note).
    const id = await client.createContainer(testContainerSpec(name, image, {
      volumes: [{ hostPath: dir, containerPath: "/out", readOnly: false }],
      command: ["/bin/sh", "-c"],
      args: ["trap 'echo TERM >> /out/term' TERM; while true; do sleep 1 & wait $!; done"],
    }));
    await client.startContainer(id);
    await client.stopContainer(id, 1);
    assert.equal(await Deno.readTextFile(`${dir}/term`), "TERM\n", "asked to stop first");
    assert.equal((await client.inspectContainer(id))?.exitCode, 137, "then killed");

    // Removing it while it runs kills it straight away: no SIGTERM, so no stop timeout.
    await Deno.remove(`${dir}/term`);
    await client.startContainer(id);
    await eventually(
      "the container to run",
      async () => (await client.inspectContainer(id))?.state === "running",
    );
    await client.removeContainer(id);
    assert.equal(await client.inspectContainer(id), undefined);
    await assert.rejects(Deno.stat(`${dir}/term`), Deno.errors.NotFound, "no SIGTERM was sent");
  } finally {
    await client.removeContainer(name);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a container outlives its Podman service and the next service stops it cleanly", async () => {
  // Socket-activated Podman exits when idle, so the agent usually talks to a newer service
  // process than the one that started its containers.
  const first = await startPodmanService();
  let id: string | undefined;
  try {
    using client = new PodmanClient({ socketPath: first.socketPath });
    const image = await ensureTestImage(client, TAG);
    id = await client.createContainer(
      testContainerSpec(uniqueContainerName("fleet-outlives"), image),
    );
    await client.startContainer(id);
  } finally {
    await first.stop();
  }

  await using second = await startPodmanService();
  using client = new PodmanClient({ socketPath: second.socketPath });
  try {
    assert.equal((await client.inspectContainer(id))?.state, "running");
    await client.stopContainer(id, 10);
    // "exited" (not "stopped") proves conmon's cleanup ran after the first service was gone;
    // exit code 0 (the image's TERM trap), not 137, that SIGTERM reached it.
    const stopped = await client.inspectContainer(id);
    assert.equal(stopped?.state, "exited");
    assert.equal(stopped?.exitCode, 0);
  } finally {
    await client.removeContainer(id);
  }
});

Deno.test("PodmanClient.removeContainer() removes a created container; an absent one is fine", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const name = uniqueContainerName("fleet-created");
  try {
    await client.createContainer(testContainerSpec(name, image));
    await client.removeContainer(name);
    assert.equal(await client.inspectContainer(name), undefined);
  } finally {
    await client.removeContainer(name);
  }
  await client.removeContainer(uniqueContainerName("fleet-absent"));
  await client.removeContainer("0123456789abcdef0123456789abcdef");
});

Deno.test("PodmanClient.createContainer() rejects an invalid spec and names a missing image", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  await assert.rejects(
    client.createContainer(
      testContainerSpec("bad name", "x", {
        ports: [{ hostPort: 0, containerPort: 80, protocol: "tcp" }],
      }),
    ),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(
        error.message,
        /^Invalid container spec "bad name": name: .*; ports\[0\]\.hostPort/,
      );
      return true;
    },
  );

  const name = uniqueContainerName("fleet-noimage");
  try {
    await assert.rejects(
      client.createContainer(testContainerSpec(name, "localhost/fleet-test:no-such-tag")),
      (error: unknown) => {
        assert.ok(error instanceof PodmanError);
        assert.equal(error.operation, "create container");
        assert.ok(error.status !== undefined && error.status >= 400); // 500 on podman 4.3
        assert.match(
          error.message,
          new RegExp(`^Podman could not create container "${name}": .*no-such-tag`),
        );
        return true;
      },
    );
  } finally {
    await client.removeContainer(name);
  }
});

Deno.test("PodmanClient.pullImage() of an unreachable image throws a PodmanError naming it", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  await assert.rejects(client.pullImage("localhost:1/nope:1"), (error: unknown) => {
    assert.ok(error instanceof PodmanError);
    assert.ok(!(error instanceof PodmanUnavailableError));
    assert.equal(error.name, "PodmanError");
    assert.equal(error.operation, "pull image");
    assert.equal(error.target, "localhost:1/nope:1");
    assert.equal(error.socketPath, svc.socketPath);
    assert.match(error.message, /^Podman could not pull image "localhost:1\/nope:1": .+/);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
});

Deno.test("PodmanClient.buildImage() surfaces a failing step; removeImage() removes the image", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const failing = `localhost/fleet-test:${uniqueContainerName("broken")}`;
  await assert.rejects(
    client.buildImage({
      tags: [failing],
      containerfile: 'FROM scratch\nRUN ["/no-such-binary"]\n',
      files: {},
    }),
    (error: unknown) => {
      assert.ok(error instanceof PodmanError);
      assert.match(error.message, /^Podman could not build image ".*broken-.*": .*no-such-binary/);
      return true;
    },
  );
  assert.equal(await client.imageExists(failing), false);

  const ref = `localhost/fleet-test:${uniqueContainerName("removable")}`;
  try {
    await client.buildImage({
      tags: [ref],
      containerfile: "FROM scratch\nCOPY data/file.txt /file.txt\nLABEL purpose=test\n",
      files: { "data/file.txt": "content\n" },
    });
    assert.equal(await client.imageExists(ref), true);
    assert.equal((await client.inspectImage(ref))?.labels["purpose"], "test");
  } finally {
    await client.removeImage(ref);
  }
  assert.equal(await client.imageExists(ref), false);
  assert.equal(await client.inspectImage(ref), undefined);
  await client.removeImage(ref); // already gone: not an error
});

Deno.test("PodmanClient on a missing socket throws PodmanUnavailableError naming the socket", async () => {
  const socketPath = `/tmp/fleet-no-such-dir-${crypto.randomUUID()}/podman.sock`;
  using client = new PodmanClient({ socketPath });
  await assert.rejects(client.ping(), (error: unknown) => {
    assert.ok(error instanceof PodmanUnavailableError);
    assert.ok(error instanceof PodmanError);
    assert.equal(error.name, "PodmanUnavailableError");
    assert.equal(error.status, undefined);
    assert.equal(error.socketPath, socketPath);
    assert.ok(error.message.includes(JSON.stringify(socketPath)), error.message);
    assert.match(error.message, /No such file or directory/);
    assert.match(error.message, /systemctl --user status podman\.socket/);
    assert.match(error.message, /podman system service/);
    assert.ok(error.cause instanceof Error);
    return true;
  });
});

Deno.test("PodmanClient on a socket nobody listens on throws PodmanUnavailableError", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-dead-socket-" });
  try {
    const socketPath = `${dir}/podman.sock`;
    // Closing a listener deletes its socket file; a hard link keeps a socket file behind
    // that nobody listens on.
    const listener = Deno.listen({ transport: "unix", path: `${dir}/live.sock` });
    await Deno.link(`${dir}/live.sock`, socketPath);
    listener.close();
    using client = new PodmanClient({ socketPath });
    await assert.rejects(client.listContainers({}), (error: unknown) => {
      assert.ok(error instanceof PodmanUnavailableError);
      assert.match(error.message, /^Podman could not list containers: .*Connection refused/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("PodmanClient follows a container its restart policy keeps restarting: restart count, last exit code, last output lines", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const name = uniqueContainerName("fleet-restarting");
  try {
    const id = await client.createContainer(testContainerSpec(name, image, {
      restartPolicy: "always",
      command: ["/bin/sh", "-c"],
      args: ["echo one; echo two >&2; echo three; exit 7"],
    }));
    assert.equal((await client.inspectContainer(id))?.restartCount, 0);
    const since = Date.now();
    await client.startContainer(id);
    const restarted = await eventually("a few restarts", async () => {
      const c = await client.inspectContainer(id);
      return c !== undefined && c.restartCount >= 3 ? c : undefined;
    });
    assert.ok(restarted.startedAt !== undefined);
    assert.equal(await client.lastExitCode(id, since - 2000), 7);
    assert.equal(await client.lastExitCode(id, Date.now() + 60_000), undefined, "none after");

    const tail = await client.containerLogs(id, { lines: 3, maxBytes: 1000 });
    assert.equal(tail.split("\n").length, 3);
    assert.match(tail, /^(one|two|three)\n(one|two|three)\n(one|two|three)$/);
    const cut = await client.containerLogs(id, { lines: 3, maxBytes: 5 });
    assert.equal(cut.length, 5, "the end of the output, within the bound");
  } finally {
    await client.removeContainer(name);
  }
});

Deno.test("PodmanClient.streamLogs() streams what a container printed, each chunk owning only its bytes", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const name = uniqueContainerName("fleet-chatty");
  try {
    // Podman sends each line as its own frame, as it does for a container's real output.
    const id = await client.createContainer(testContainerSpec(name, image, {
      command: ["/bin/sh", "-c"],
      args: [
        "i=0; while [ $i -lt 300 ]; do printf '%04d %01000d\\n' $i 0; i=$((i+1)); done",
      ],
    }));
    await client.startContainer(id);
    await eventually("the container to exit", async () => {
      return (await client.inspectContainer(id))?.state === "exited";
    });
    const read = { follow: false, timestamps: false, tail: undefined, sinceSeconds: undefined };
    const stream = await client.streamLogs(id, read, new AbortController().signal);
    const chunks = (await Array.fromAsync(stream)).map((f) => f.data);
    assert.deepEqual(
      new TextDecoder().decode(concat(chunks)).trimEnd().split("\n"),
      Array.from({ length: 300 }, (_, i) => `${String(i).padStart(4, "0")} ${"0".repeat(1000)}`),
    );
    for (const chunk of chunks) {
      // A view on Deno's 64 KiB read buffer would keep all of it alive for one line.
      assert.equal(chunk.buffer.byteLength, chunk.byteLength);
    }
  } finally {
    await client.removeContainer(name);
  }
});

Deno.test("PodmanClient.listContainers() shows the ports podman published", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const name = uniqueContainerName("fleet-ports");
  const port = freeLoopbackPort();
  try {
    await client.createContainer(testContainerSpec(name, image, {
      labels: { "fleet.test/run": name },
      ports: [{ hostPort: port, containerPort: 80, protocol: "tcp", hostIp: "127.0.0.1" }],
    }));
    const [listed] = await client.listContainers({ "fleet.test/run": name });
    assert.deepEqual(listed?.ports, [
      { hostPort: port, containerPort: 80, protocol: "tcp", range: 1 },
    ]);
  } finally {
    await client.removeContainer(name);
  }
});

Deno.test("PodmanClient passes a healthcheck to podman; runHealthcheck() runs it and containerHealth() reads the verdict", async () => {
  await using svc = await startPodmanService();
  using client = new PodmanClient({ socketPath: svc.socketPath });
  const image = await ensureTestImage(client, TAG);
  const check = (script: string) => ({
    command: ["/bin/sh", "-c", script],
    intervalMs: 60_000,
    timeoutMs: 5_000,
    retries: 2,
    startPeriodMs: 0,
  });
  const good = uniqueContainerName("fleet-healthy");
  const bad = uniqueContainerName("fleet-unhealthy");
  try {
    const sleeper = { command: ["/bin/sleep"], args: ["600"] };
    const goodId = await client.createContainer(
      testContainerSpec(good, image, { ...sleeper, healthcheck: check("test -d /bin") }),
    );
    const badId = await client.createContainer(
      testContainerSpec(bad, image, { ...sleeper, healthcheck: check("echo no page; exit 3") }),
    );
    assert.equal(await client.containerHealth(goodId), undefined, "not started: no verdict yet");
    await client.startContainer(goodId);
    await client.startContainer(badId);
    // No systemd here: podman's timer never runs the check, so it stays starting until asked.
    assert.deepStrictEqual(await client.containerHealth(goodId), {
      status: "starting",
      failingStreak: 0,
      lastOutput: "",
    });

    const before = Date.now();
    await client.runHealthcheck(goodId);
    await client.runHealthcheck(goodId);
    const healthy = await client.containerHealth(goodId);
    assert.equal(healthy?.status, "healthy");
    assert.ok(
      healthy.passingSince! >= before - 1000 && healthy.passingSince! <= healthy.lastCheckAt!,
    );

    await client.runHealthcheck(badId);
    assert.equal((await client.containerHealth(badId))?.status, "starting", "1 of 2 retries");
    await client.runHealthcheck(badId);
    const unhealthy = await client.containerHealth(badId);
    assert.equal(unhealthy?.status, "unhealthy");
    assert.equal(unhealthy.failingStreak, 2);
    assert.equal(unhealthy.lastOutput, "no page");
    assert.equal(unhealthy.passingSince, undefined);

    await client.stopContainer(badId, 0);
    await client.runHealthcheck(badId); // not running: nothing to check, not an error
    await client.runHealthcheck("fleet-no-such-container");
  } finally {
    await client.removeContainer(good);
    await client.removeContainer(bad);
  }
});
