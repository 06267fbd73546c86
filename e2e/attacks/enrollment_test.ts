/**
 * Attacks on enrollment (issue 12, item 3), on a real sshd: a machine in the middle that takes
 * over the device's address, a package altered on its way to the device, secrets on command
 * lines, a key taken out of service that still works.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSshServer } from "../../testing/sshd.ts";
import { SshTarget } from "../../adapters/host/ssh_target.ts";
import type { RunOptions, Target } from "../../adapters/host/target.ts";
import { EnrollError, ensurePackage } from "../../enroll/mod.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const noPrompt = () => Promise.resolve(undefined);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `fleet <args>` as a person would, with no FLEET_* settings of this process. */
async function fleet(args: string[], stdin?: string): Promise<Run> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("FLEET_")),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), ...args],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** A folder with a package file, as --package-dir wants it. */
async function packageDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-attack-pkg-" });
  await Deno.writeFile(`${dir}/fleet_9.9.9_amd64.deb`, new Uint8Array(4096).fill(7));
  await Deno.writeFile(`${dir}/fleet_9.9.9_arm64.deb`, new Uint8Array(4096).fill(7));
  return dir;
}

Deno.test("attack: a machine in the middle with another host key gets nothing from enroll", async () => {
  const device = await startSshServer();
  const port = device.port;
  const dir = await Deno.makeTempDir({ prefix: "fleet-attack-mitm-" });
  const knownHosts = `${dir}/known_hosts`;
  // An earlier enrollment recorded the real device's key.
  await Deno.copyFile(device.knownHosts, knownHosts);
  const realFingerprint = device.hostKeyFingerprint;
  await device[Symbol.asyncDispose]();
  // The attacker now answers at the device's address, and would accept the admin's login.
  await using mitm = await startSshServer({ port });
  const packages = await packageDir();
  const enroll = (...more: string[]) =>
    fleet([
      "device",
      "enroll",
      "--device-id",
      "pi-7",
      "--target",
      `ssh://root@127.0.0.1:${port}`,
      "--ssh-key",
      mitm.clientKey,
      "--known-hosts",
      knownHosts,
      "--package-dir",
      packages,
      "--no-wait",
      ...more,
    ]);
  try {
    const changed = await enroll("--trust-on-first-use");
    assert.equal(changed.code, 1, changed.stderr);
    assert.match(changed.stderr, /SSH host key of root@127\.0\.0\.1:\d+ changed/);
    assert.ok(changed.stderr.includes(`presented ${mitm.hostKeyFingerprint}`), changed.stderr);
    assert.ok(changed.stderr.includes(`expected ${realFingerprint}`), changed.stderr);

    const pinned = await enroll("--host-key-fingerprint", realFingerprint);
    assert.equal(pinned.code, 1, pinned.stderr);
    assert.match(pinned.stderr, /does not match/);

    // A first contact, unpinned, is refused too, instead of trusting whoever answers.
    await Deno.remove(knownHosts);
    const unknown = await enroll();
    assert.equal(unknown.code, 1, unknown.stderr);
    assert.match(unknown.stderr, /is unknown .*--host-key-fingerprint SHA256:/);
    await assert.rejects(Deno.stat(knownHosts), Deno.errors.NotFound, "nothing recorded");

    assert.doesNotMatch(mitm.log(), /Accepted publickey/, "no login reached the attacker");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(packages, { recursive: true });
  }
});

/** Builds an installable .deb named `name` that carries no files. */
async function emptyDeb(dir: string, name: string): Promise<string> {
  await Deno.mkdir(`${dir}/${name}/DEBIAN`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/${name}/DEBIAN/control`,
    `Package: ${name}\nVersion: 1.0\nArchitecture: all\nMaintainer: test <t@example.com>\n` +
      `Description: enrollment attack probe\n`,
  );
  const out = `${dir}/${name}.deb`;
  const built = await new Deno.Command("dpkg-deb", {
    args: ["--root-owner-group", "--build", `${dir}/${name}`, out],
    stdout: "null",
  }).output();
  assert.equal(built.code, 0);
  return out;
}

/** A target whose package upload is swapped for other bytes on the way (or at rest). */
function swappingPackage(target: Target, swapped: Uint8Array): Target {
  return {
    description: target.description,
    run: (argv: string[], options: RunOptions = {}) =>
      target.run(
        argv,
        options.stdin instanceof Uint8Array && options.stdin.length >= 4096
          ? { ...options, stdin: swapped }
          : options,
      ),
    [Symbol.asyncDispose]: () => target[Symbol.asyncDispose](),
  };
}

const PROBE = "fleet-enroll-attack-probe";

async function probeInstalled(): Promise<boolean> {
  const q = await new Deno.Command("dpkg-query", {
    args: ["-W", "-f", "${Status}", PROBE],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(q.stdout).startsWith("install ok installed");
}

Deno.test("attack: a package altered before it is installed is refused, nothing installed", async () => {
  await using sshd = await startSshServer();
  const dir = await Deno.makeTempDir({ prefix: "fleet-attack-deb-" });
  try {
    const evil = await Deno.readFile(await emptyDeb(dir, PROBE));
    const genuine = `${dir}/fleet_9.9.9_amd64.deb`;
    await Deno.writeFile(genuine, new Uint8Array(8192).fill(1));
    await using ssh = await SshTarget.connect({
      address: { user: "root", host: "127.0.0.1", port: sshd.port },
      identityFile: sshd.clientKey,
      knownHostsFile: sshd.knownHosts,
      prompt: noPrompt,
    });
    const target = swappingPackage(ssh, evil);
    const err = await ensurePackage(target, { path: genuine, version: "9.9.9" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof EnrollError, `refused, got ${String(err)}`);
    assert.match(
      err.message,
      /SHA-256 there is [0-9a-f]{64}, expected [0-9a-f]{64}; nothing was installed/,
    );
    assert.equal(await probeInstalled(), false, "the swapped package was not installed");
    const left = await ssh.run(["sh", "-c", "ls -d /tmp/fleet-enroll.* 2>/dev/null || true"]);
    assert.equal(left.stdout.trim(), "", "the upload directory is gone");
  } finally {
    if (await probeInstalled()) {
      await new Deno.Command("dpkg", { args: ["-P", PROBE], stdout: "null" }).output();
    }
    await Deno.remove(dir, { recursive: true });
  }
});
