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
import {
  CONFIG_PATH,
  DEVICE_KEY_PATH,
  EnrollError,
  ensureConfig,
  ensureDeviceKey,
  ensurePackage,
  writeAgentFile,
} from "../../enroll/mod.ts";
import { renderAgentConfig } from "../../agent/config.ts";
import { startTestProvider } from "../../testing/oidc_provider.ts";
import { createTokenSource, loadPrivateKey, TokenMintError } from "../../adapters/oidc/mod.ts";
import { silentLogger } from "../../adapters/logger.ts";
import {
  createZitadelIdentityProvider,
  createZitadelManagement,
} from "../../adapters/zitadel/mod.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const noPrompt = () => Promise.resolve(undefined);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `fleet <args>` as a person would, with no FLEET_* settings of this process; `env` adds
 * variables (a PATH with a recording ssh in front, say).
 */
async function fleet(
  args: string[],
  stdin?: string,
  extraEnv: Record<string, string> = {},
): Promise<Run> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("FLEET_")),
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), ...args],
    env: { ...env, NO_COLOR: "1", ...extraEnv },
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

/**
 * A folder to put first on PATH: its `ssh` and `ssh-keyscan` append their argv, one NUL-separated
 * record per line, to `argv.log` and run the real program. What they record is what `ps` shows
 * on this machine, and the remote command line is part of it: what `ps` shows on the device.
 * Disposing of it removes the folder.
 */
async function recordingSsh(): Promise<
  { path: string; argv: () => Promise<string> } & AsyncDisposable
> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-attack-argv-" });
  for (const program of ["ssh", "ssh-keyscan"]) {
    await Deno.writeTextFile(
      `${dir}/${program}`,
      `#!/bin/sh\nprintf '%s\\0' "$0" "$@" >> ${dir}/argv.log\necho >> ${dir}/argv.log\n` +
        `exec /usr/bin/${program} "$@"\n`,
      { mode: 0o755 },
    );
  }
  return {
    path: `${dir}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    argv: () => Deno.readTextFile(`${dir}/argv.log`).catch(() => ""),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Mints a token with a Zitadel key file, as the agent does. */
async function mint(issuer: string, audience: string, keyFile: string): Promise<string> {
  const key = await loadPrivateKey(keyFile);
  return await createTokenSource({
    issuer,
    clientId: key.clientId ?? "",
    privateKeyJwk: key,
    grant: "jwt-bearer",
    audience,
    logger: silentLogger,
  }).token();
}

Deno.test("attack: a rotated-out device key no longer gets a token; no secret is on a command line", async () => {
  const adminToken = `admin-${crypto.randomUUID()}`;
  await using idp = await startTestProvider({ managementToken: adminToken });
  await using sshd = await startSshServer({ privateEtc: true });
  const identity = createZitadelIdentityProvider({
    management: createZitadelManagement({ baseUrl: idp.issuer, token: adminToken }),
    projectId: "fleet",
    keyExpiration: () => new Date(Date.now() + 365 * 24 * 3600 * 1000),
  });
  // Enrolled earlier: the device has its identity, its key and a config that uses it.
  const enrolled = await identity.ensureDeviceIdentity("pi-7");
  const oldKey = enrolled.keyFile!;
  assert.ok(await mint(idp.issuer, idp.audience, oldKey), "the enrolled key signs in");
  {
    await using device = await SshTarget.connect({
      address: { user: "root", host: "127.0.0.1", port: sshd.port },
      identityFile: sshd.clientKey,
      knownHostsFile: sshd.knownHosts,
      prompt: noPrompt,
    });
    const setup = await device.run([
      "sh",
      "-c",
      "groupadd -r fleet-agent && mkdir -p /etc/fleet-agent",
    ]);
    assert.equal(setup.code, 0, setup.stderr);
    await writeAgentFile(device, DEVICE_KEY_PATH, oldKey);
    await writeAgentFile(
      device,
      CONFIG_PATH,
      renderAgentConfig({
        device_id: "pi-7",
        nats: {
          urls: ["nats://127.0.0.1:4222"],
          credentials: {
            type: "oidc",
            issuer: idp.issuer,
            key_file: DEVICE_KEY_PATH,
            audience: idp.audience,
          },
        },
        podman: { socket: "/run/user/1000/podman/podman.sock" },
      }, CONFIG_PATH),
    );
  }

  await using ssh = await recordingSsh();
  const rotated = await fleet(
    [
      "device",
      "rotate-key",
      "pi-7",
      "--target",
      `ssh://root@127.0.0.1:${sshd.port}`,
      "--ssh-key",
      sshd.clientKey,
      "--known-hosts",
      sshd.knownHosts,
      "--zitadel-url",
      idp.issuer,
      "--zitadel-project-id",
      "fleet",
      "--zitadel-token-file",
      "-",
    ],
    `${adminToken}\n`,
    { PATH: ssh.path },
  );
  assert.equal(rotated.code, 0, `${rotated.stdout}\n${rotated.stderr}`);
  assert.match(rotated.stdout, /pi-7 signs in with key \d+; key \d+ is revoked/);

  await using device = await SshTarget.connect({
    address: { user: "root", host: "127.0.0.1", port: sshd.port },
    identityFile: sshd.clientKey,
    knownHostsFile: sshd.knownHosts,
    prompt: noPrompt,
  });
  const newKey = (await device.run(["cat", DEVICE_KEY_PATH])).stdout;
  const mode = (await device.run(["stat", "-c", "%a %U:%G", DEVICE_KEY_PATH])).stdout.trim();
  assert.equal(mode, "640 root:fleet-agent");
  assert.notEqual(JSON.parse(newKey).keyId, JSON.parse(oldKey).keyId);
  assert.ok(await mint(idp.issuer, idp.audience, newKey), "the device's new key signs in");
  await assert.rejects(
    mint(idp.issuer, idp.audience, oldKey),
    (err: unknown) => err instanceof TokenMintError && err.status === 401,
    "the superseded key is revoked",
  );

  // ps, here and on the device, never showed the admin's token or a private key.
  const argv = await ssh.argv();
  assert.match(argv, /ssh-keyscan/, "the recording saw the spawns");
  assert.match(argv, /device-key\.json/, "the recording saw the device's command lines");
  for (const secret of [adminToken, "PRIVATE KEY", JSON.parse(newKey).key.split("\n")[1]]) {
    assert.ok(!argv.includes(secret), `a command line held ${secret.slice(0, 20)}…`);
  }
});

/** A target that keeps the command line of everything it runs: what `ps` on the device shows. */
function recording(target: Target, argvs: string[][]): Target {
  return {
    description: target.description,
    run: (argv: string[], options?: RunOptions) => {
      argvs.push(argv);
      return target.run(argv, options);
    },
    [Symbol.asyncDispose]: () => target[Symbol.asyncDispose](),
  };
}

Deno.test("attack: enrollment's key and password reach the device on no command line and in no diff shown", async () => {
  await using sshd = await startSshServer({ privateEtc: true });
  await using ssh = await SshTarget.connect({
    address: { user: "root", host: "127.0.0.1", port: sshd.port },
    identityFile: sshd.clientKey,
    knownHostsFile: sshd.knownHosts,
    prompt: noPrompt,
  });
  const password = `pw-${crypto.randomUUID()}`;
  const key =
    `{"type":"serviceaccount","keyId":"1","key":"-----BEGIN PRIVATE KEY-----\\n${crypto.randomUUID()}\\n-----END PRIVATE KEY-----","userId":"device-pi-7"}`;
  const setup = await ssh.run([
    "sh",
    "-c",
    // A config written by hand, with its own password: enroll must ask before replacing it.
    `groupadd -r fleet-agent && mkdir -p /etc/fleet-agent && ` +
    `printf 'device_id = "pi-7"\\n[nats]\\nurls = ["nats://a:4222"]\\n[nats.credentials]\\n` +
    `type = "userpass"\\nuser = "old"\\npassword = "old-secret"\\n' > ${CONFIG_PATH}`,
  ]);
  assert.equal(setup.code, 0, setup.stderr);
  const argvs: string[][] = [];
  const device = recording(ssh, argvs);
  const shown: string[] = [];
  await ensureDeviceKey(device, key);
  await ensureConfig(
    device,
    renderAgentConfig({
      device_id: "pi-7",
      nats: { urls: ["nats://a:4222"], credentials: { type: "userpass", user: "pi-7", password } },
      podman: { socket: "/run/user/1000/podman/podman.sock" },
    }, CONFIG_PATH),
    (_path, diff) => {
      shown.push(diff);
      return Promise.resolve(true);
    },
  );
  assert.equal((await ssh.run(["cat", DEVICE_KEY_PATH])).stdout, key, "the key arrived");
  assert.match((await ssh.run(["cat", CONFIG_PATH])).stdout, new RegExp(password));
  assert.equal(shown.length, 1, "the hand-written config was shown before it was replaced");
  assert.match(shown[0]!, /password = "\*+"/);
  for (const secret of [password, "old-secret", "PRIVATE KEY"]) {
    assert.ok(!shown[0]!.includes(secret), `the diff shows ${secret}`);
    assert.ok(!argvs.flat().some((word) => word.includes(secret)), `a command line held ${secret}`);
  }
});
