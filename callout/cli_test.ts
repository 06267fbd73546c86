/**
 * `fleet callout keys | nats-config | run` as users run them: the real program is spawned
 * (`deno run -A main.ts ...`) and nats-server is started with the block it prints.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AuthorizationError } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { startNatsServer } from "../sandbox/nats_server.ts";
import {
  connectNats,
  installConnectionResetGuard,
  NatsConnectError,
  noCredentials,
} from "../adapters/nats/mod.ts";
import { silentLogger } from "../adapters/logger.ts";
import { freePort } from "../adapters/process.ts";
import { eventually } from "../testing/eventually.ts";
import { makeTestCertificates } from "../testing/tls.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MAIN = join(ROOT, "main.ts");

function env(): Record<string, string> {
  const all = Object.entries(Deno.env.toObject()).filter(([k]) => !k.startsWith("FLEET_"));
  return { ...Object.fromEntries(all), NO_COLOR: "1" };
}

function command(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    env: env(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function fleet(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await command(args).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * `fleet callout run --config <path>` in the background: its log so far, a promise that
 * resolves once it answers requests, and a stop (SIGTERM) that asserts it exits cleanly
 * (code 0, nothing on stdout).
 */
function runCallout(path: string, ...args: string[]) {
  const child = command(["callout", "run", "--config", path, ...args]).spawn();
  const stdout = new Response(child.stdout).text();
  let log = "";
  const stderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  return {
    log: () => log,
    answering: eventually("the callout answering", () => log.includes("Answering NATS"), 20_000),
    async stop(): Promise<void> {
      child.kill("SIGTERM");
      const status = await child.status;
      await stderr;
      assert.equal(status.code, 0, log);
      assert.equal(await stdout, "");
    },
  };
}

Deno.test("fleet callout keys writes two private seed files and refuses to overwrite them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = await fleet("callout", "keys", "--dir", dir);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^wrote .*issuer\.nk \(issuer A[A-Z2-7]{55}\)$/m);
    assert.match(first.stdout, /^wrote .*xkey\.nk \(xkey X[A-Z2-7]{55}\)$/m);
    for (const file of ["issuer.nk", "xkey.nk"]) {
      assert.equal((await Deno.stat(join(dir, file))).mode! & 0o777, 0o600, file);
    }
    const seed = await Deno.readTextFile(join(dir, "issuer.nk"));
    assert.match(seed, /^SA[A-Z2-7]{56}\n$/);

    const again = await fleet("callout", "keys", "--dir", dir);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /issuer\.nk already exists; pass --force to replace it/);
    assert.equal(await Deno.readTextFile(join(dir, "issuer.nk")), seed);

    const forced = await fleet("callout", "keys", "--dir", dir, "--force", "--no-xkey");
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(await Deno.readTextFile(join(dir, "issuer.nk")), seed);
    assert.ok(!forced.stdout.includes("xkey"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fleet callout nats-config names a bad config file and field (exit 2)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "callout.toml");
    await Deno.writeTextFile(path, `[nats]\nurls = []\n`);
    const run = await fleet("callout", "nats-config", "--config", path);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stdout, "");
    assert.match(run.stderr, new RegExp(`Invalid callout config ${path}: nats\\.urls: `));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fleet callout nats-config output runs nats-server, and fleet callout run answers it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal((await fleet("callout", "keys", "--dir", dir)).code, 0);
    await Deno.writeTextFile(join(dir, "password"), "callout-pw\n");
    const config = (url: string) => `
[nats]
urls = ["${url}"]
user = "fleet-callout"
password_file = "${dir}/password"
[account]
issuer_seed_file = "${dir}/issuer.nk"
xkey_seed_file = "${dir}/xkey.nk"
[oidc]
issuer = "http://127.0.0.1:9/unreachable"
audience = "fleet-nats"
roles = { fleet-device = "device" }
`;
    const path = join(dir, "callout.toml");
    await Deno.writeTextFile(path, config("nats://127.0.0.1:4222"));
    const printed = await fleet("callout", "nats-config", "--config", path);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /auth_callout \{\n\s+issuer: "A[A-Z2-7]{55}"/);
    assert.match(printed.stdout, /xkey: "X[A-Z2-7]{55}"/);
    assert.match(printed.stdout, /password: "callout-pw"/);

    await using ns = await startNatsServer({ extraConfig: printed.stdout });
    await Deno.writeTextFile(path, config(ns.url));
    const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const healthPort = free.addr.port;
    free.close();
    const callout = runCallout(path, "--health-port", String(healthPort));
    const health = (path: string) => fetch(`http://127.0.0.1:${healthPort}${path}`);
    try {
      await callout.answering;
      installConnectionResetGuard(silentLogger);
      const err = await connect({ servers: ns.url, token: "not-a-jwt", reconnect: false })
        .then(async (nc) => {
          await nc.close();
          return undefined;
        }, (e: unknown) => e);
      assert.ok(err instanceof AuthorizationError, `${err}\n${callout.log()}`);
      // "Answering" is logged just before the command records the service as started.
      await eventually("/readyz 200", async () => {
        const ready = await health("/readyz");
        const body = await ready.text();
        return ready.status === 200 && body === "ready\n";
      });
      const metrics = await (await health("/metrics")).text();
      assert.match(metrics, /^fleet_build_info\{version="\d+\.\d+\.\d+[^"]*",deno="[^"]+"\} 1$/m);
      assert.match(metrics, /^fleet_callout_authorizations_total\{result="refused"\} 1$/m);
    } finally {
      await callout.stop();
    }
    const log = callout.log();
    assert.match(log, /Answering NATS authorization requests .*encrypted=true/);
    assert.match(log, /WARN {2}Refused a NATS connection: the token was rejected: /);
    assert.ok(!log.includes("not-a-jwt"), log);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fleet callout nats-config emits the TLS and wss blocks, and fleet callout run connects over TLS with its CA", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal((await fleet("callout", "keys", "--dir", dir, "--no-xkey")).code, 0);
    await Deno.writeTextFile(join(dir, "password"), "callout-pw\n");
    const certs = await makeTestCertificates(dir, "nats", ["IP:127.0.0.1"]);
    const wsListen = `127.0.0.1:${freePort()}`;
    const config = (url: string) => `
[nats]
urls = ["${url}"]
ca_file = "${certs.caFile}"
pin = "${certs.pin}"
user = "fleet-callout"
password_file = "${dir}/password"
[account]
issuer_seed_file = "${dir}/issuer.nk"
[oidc]
issuer = "http://127.0.0.1:9/unreachable"
audience = "fleet-nats"
roles = { fleet-device = "device" }
[server.tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
ca_file = "${certs.caFile}"
[server.websocket]
listen = "${wsListen}"
`;
    const path = join(dir, "callout.toml");
    await Deno.writeTextFile(path, config("tls://127.0.0.1:4222"));
    const printed = await fleet("callout", "nats-config", "--config", path);
    assert.equal(printed.code, 0, printed.stderr);
    assert.ok(
      printed.stdout.includes(
        `tls {\n  cert_file: "${certs.certFile}"\n  key_file: "${certs.keyFile}"\n` +
          `  ca_file: "${certs.caFile}"\n}\n`,
      ),
      printed.stdout,
    );
    assert.match(printed.stdout, new RegExp(`websocket \\{\\n  listen: "${wsListen}"\\n  tls \\{`));

    await using ns = await startNatsServer({ extraConfig: printed.stdout });
    const url = `tls://127.0.0.1:${ns.port}`;
    await Deno.writeTextFile(path, config(url));
    const callout = runCallout(path);
    try {
      await callout.answering;
      installConnectionResetGuard(silentLogger);
      // Every client is on TLS: a plaintext client cannot get in, one with the CA reaches the callout.
      for (const servers of [url, `wss://${wsListen}`]) {
        const err = await connectNats({
          servers: [servers],
          tls: { caFile: certs.caFile },
          credentials: noCredentials(),
          name: "test",
          logger: silentLogger,
          waitOnFirstConnect: false,
        }).then(async (nc) => {
          await nc.close();
          return undefined;
        }, (e: unknown) => e);
        assert.ok(err instanceof NatsConnectError, `${err}`);
        assert.match(err.message, /rejected no credentials/, servers);
      }
    } finally {
      await callout.stop();
    }
    const log = callout.log();
    assert.match(log, /Connected to NATS at 127\.0\.0\.1:\d+/);
    assert.equal(
      (log.match(/Refused a NATS connection: the client presented no credentials/g) ?? []).length,
      2,
      log,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
