import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { startPodmanService } from "../sandbox/podman_service.ts";
import { PodmanClient } from "../adapters/podman/mod.ts";
import { fleetCacheDir } from "../adapters/cache_dir.ts";
import { denoRuntime, pinnedSha512, sha512File } from "../packaging/deno_runtime.ts";
import { readElf } from "../packaging/elf.ts";
import { startOciRegistry } from "../testing/oci_registry.ts";
import { fleetImageContext, ImageContextError } from "./image.ts";
import { buildImageIndex, bundleProgram, imageSizeLines } from "./image_index.ts";

const VERSION = denoJson.version;

/** The pinned runtime of `arch`, fetched from npm on first use (packaging/deno_runtime.ts). */
function runtime(arch: "amd64" | "arm64"): Promise<string> {
  return denoRuntime(arch, Deno.version.deno, fleetCacheDir());
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("fleetImageContext() lays out each arch's pinned runtime, its loader and libraries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-image-" });
  try {
    await Deno.writeTextFile(`${dir}/fleet.js`, "console.log(1);\n");
    const expected = {
      amd64: {
        machine: "x86_64",
        loader: "runtime/lib64/ld-linux-x86-64.so.2",
        libc: "runtime/lib/x86_64-linux-gnu/libc.so.6",
        gcc: "runtime/lib/x86_64-linux-gnu/libgcc_s.so.1",
      },
      arm64: {
        machine: "aarch64",
        loader: "runtime/lib/ld-linux-aarch64.so.1",
        libc: "runtime/lib/aarch64-linux-gnu/libc.so.6",
        gcc: "runtime/lib/aarch64-linux-gnu/libgcc_s.so.1",
      },
    } as const;
    for (const arch of ["amd64", "arm64"] as const) {
      const deno = await runtime(arch);
      const context = await fleetImageContext({
        arch,
        denoBinary: deno,
        bundle: `${dir}/fleet.js`,
      });
      const paths = Object.keys(context.files);
      for (const path of Object.values(expected[arch]).slice(1)) {
        assert.ok(paths.includes(path), `${arch}: ${path} in ${paths.join(" ")}`);
      }
      // Every ELF file of the image is for the image's machine, and deno is the pinned one.
      for (const path of paths.filter((p) => p.startsWith("runtime/"))) {
        assert.equal(readElf(context.files[path]!).machine, expected[arch].machine, path);
        assert.equal(context.fileModes[path], 0o755);
      }
      assert.equal(context.fileModes["app/fleet.js"], 0o644);
      assert.equal(
        await sha512File(deno),
        await pinnedSha512(arch, Deno.version.deno),
        `${arch} runtime is the pinned one`,
      );
      assert.equal(context.files["runtime/usr/bin/deno"]?.length, (await Deno.stat(deno)).size);

      const lines = context.containerfile.split("\n");
      assert.ok(lines.includes("FROM scratch"));
      assert.ok(lines.includes("USER 65532"));
      assert.ok(
        lines.includes('ENTRYPOINT ["/usr/bin/deno", "run", "-A", "--no-config", "/app/fleet.js"]'),
      );
      assert.ok(lines.includes('CMD ["operator", "run", "--source", "kube"]'));
      assert.match(context.containerfile, /org\.opencontainers\.image\.title="fleet"/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fleetImageContext() refuses missing files, non-executables and missing libraries", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-image-" });
  try {
    await Deno.writeTextFile(`${dir}/fleet.js`, "console.log(1);\n");
    const arm64 = await runtime("arm64");
    await assert.rejects(
      fleetImageContext({ arch: "arm64", denoBinary: `${dir}/nope`, bundle: `${dir}/fleet.js` }),
      (error: unknown) =>
        error instanceof ImageContextError && error.path === `${dir}/nope` &&
        /does not exist/.test(error.message),
    );
    await assert.rejects(
      fleetImageContext({
        arch: "arm64",
        denoBinary: `${dir}/fleet.js`,
        bundle: `${dir}/fleet.js`,
      }),
      /not an ELF file, not an executable/,
    );
    await assert.rejects(
      fleetImageContext({ arch: "amd64", denoBinary: arm64, bundle: `${dir}/fleet.js` }),
      /aarch64 executable, but the amd64 image needs an x86_64 one/,
    );
    await assert.rejects(
      fleetImageContext({ arch: "arm64", denoBinary: arm64, bundle: `${dir}/missing.js` }),
      /the bundle does not exist/,
    );
    // A build host without the arm64 cross libraries is told which packages to install.
    await assert.rejects(
      fleetImageContext({
        arch: "arm64",
        denoBinary: arm64,
        bundle: `${dir}/fleet.js`,
        libraryDirs: [dir],
      }),
      /"ld-linux-aarch64\.so\.1" \(aarch64\) is not installed; on Debian install libc6-arm64-cross libgcc-s1-arm64-cross/,
    );
    await assert.rejects(
      fleetImageContext({
        arch: "arm64",
        denoBinary: arm64,
        bundle: `${dir}/fleet.js`,
        version: 'x" evil',
      }),
      TypeError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Polls until the container has exited; returns its exit code. */
async function exitCode(client: PodmanClient, id: string, timeoutMs = 60_000): Promise<number> {
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

Deno.test("buildImageIndex() builds one index for amd64 and arm64 whose images both run fleet, and pushes it", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-image-" });
  await using service = await startPodmanService();
  using client = new PodmanClient({ socketPath: service.socketPath });
  await using registry = startOciRegistry();
  const suffix = crypto.randomUUID().slice(0, 8);
  const name = `localhost/fleet:test-${suffix}`;
  const containers: string[] = [];
  try {
    const started = performance.now();
    const images = await buildImageIndex({
      podman: client,
      name,
      arches: ["amd64", "arm64"],
      version: VERSION,
      bundle: await bundleProgram(dir),
      cacheDir: fleetCacheDir(),
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `built ${name} (bundle included) in ${seconds} s:\n${imageSizeLines(images).join("\n")}`,
    );
    const [amd64, arm64] = images;
    assert.ok(amd64 !== undefined && arm64 !== undefined);

    await t.step("the index holds one linux image per architecture", async () => {
      const list = await client.inspectManifestList(name);
      assert.deepEqual(
        list?.map((m) => `${m.os}/${m.architecture}`),
        ["linux/amd64", "linux/arm64"],
      );
      for (const image of images) {
        const inspected = await client.inspectImage(image.ref);
        assert.equal(`${inspected?.os}/${inspected?.architecture}`, `linux/${image.arch}`);
        assert.equal(inspected?.labels["org.opencontainers.image.title"], "fleet");
        assert.equal(inspected?.labels["org.opencontainers.image.version"], VERSION);
      }
    });

    await t.step(
      "amd64 under podman: fleet --version, callout run --help, and a usage error exits 2",
      async () => {
        const start = async (name: string, args: string[]) => {
          const id = await client.createContainer({
            name: `fleet-image-test-${suffix}-${name}`,
            image: amd64.ref,
            labels: {},
            env: {},
            ports: [],
            volumes: [],
            restartPolicy: "no",
            args,
          });
          containers.push(id);
          await client.startContainer(id);
          return id;
        };
        const [version, usage, callout] = await Promise.all([
          start("version", ["--version"]),
          start("usage", ["frobnicate"]),
          start("callout", ["callout", "run", "--help"]),
        ]);
        assert.equal(await exitCode(client, version), 0, "fleet --version in the image");
        const logs = await client.containerLogs(version, { lines: 10, maxBytes: 4096 });
        assert.equal(logs.trim(), VERSION);
        assert.equal(await exitCode(client, usage), 2, "fleet frobnicate in the image");
        // The callout's Deployment runs the same image with these arguments.
        assert.equal(await exitCode(client, callout), 0, "fleet callout run --help in the image");
        const help = await client.containerLogs(callout, { lines: 200, maxBytes: 65536 });
        assert.match(help, /Usage: fleet callout run/);
      },
    );

    await t.step(
      "arm64 under qemu-user: the image's own runtime and libraries run fleet --version",
      async () => {
        // No binfmt_misc here (nor on CI's machines of this kind), so `podman run` cannot start
        // an arm64 container: its file system is exported and run with qemu-aarch64 instead,
        // with the exported tree as the root for the loader and every library it opens.
        const created = await run("podman", ["create", "--platform", "linux/arm64", arm64.ref]);
        assert.equal(created.code, 0, created.stderr);
        const id = created.stdout.trim();
        containers.push(id);
        const rootfs = `${dir}/rootfs-arm64`;
        await Deno.mkdir(rootfs);
        const exported = await run("podman", ["export", "-o", `${dir}/arm64.tar`, id]);
        assert.equal(exported.code, 0, exported.stderr);
        const untar = await run("tar", ["-xf", `${dir}/arm64.tar`, "-C", rootfs]);
        assert.equal(untar.code, 0, untar.stderr);
        assert.equal(readElf(await Deno.readFile(`${rootfs}/usr/bin/deno`)).machine, "aarch64");

        const r = await run(
          "qemu-aarch64-static",
          [
            "-L",
            rootfs,
            `${rootfs}/usr/bin/deno`,
            "run",
            "-A",
            "--no-config",
            `${rootfs}/app/fleet.js`,
            "--version",
          ],
          { DENO_DIR: `${dir}/deno-dir-arm64`, DENO_NO_UPDATE_CHECK: "1" },
        );
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), VERSION);
      },
    );

    await t.step("podman manifest push --all sends the index and both images", async () => {
      const tag = `test-${suffix}`;
      await client.pushManifestList(name, `${registry.host}/fleet:${tag}`, { tlsVerify: false });
      const index = JSON.parse(registry.manifest("fleet", tag)?.body ?? "null");
      assert.ok(index !== null, "the registry has the index");
      const entries = index.manifests as {
        digest: string;
        platform: { os: string; architecture: string };
      }[];
      assert.deepEqual(
        entries.map((m) => `${m.platform.os}/${m.platform.architecture}`),
        ["linux/amd64", "linux/arm64"],
      );
      const pushed: string[] = [];
      for (const entry of entries) {
        const manifest = JSON.parse(registry.manifest("fleet", entry.digest)?.body ?? "null");
        assert.ok(manifest !== null, `the registry has ${entry.digest}`);
        const layers = manifest.layers as { digest: string; size: number }[];
        assert.equal(layers.length, 2, "a runtime layer and a program layer");
        for (const layer of layers) assert.equal(registry.blobSize(layer.digest), layer.size);
        const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
        pushed.push(
          `linux/${entry.platform.architecture}: ${
            mb(layers.reduce((sum, l) => sum + l.size, 0))
          } compressed as pushed (${layers.map((l) => mb(l.size)).join(" + ")})`,
        );
      }
      console.log(pushed.join("\n"));
    });
  } finally {
    for (const id of containers) await client.removeContainer(id);
    await client.removeManifestList(name);
    await client.removeImage(`${name}-amd64`);
    await client.removeImage(`${name}-arm64`);
    await Deno.remove(dir, { recursive: true });
  }
});
