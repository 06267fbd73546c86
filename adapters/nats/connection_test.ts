import assert from "node:assert/strict";
import { wsconnect } from "@nats-io/nats-core";
import { silentLogger } from "../logger.ts";
import {
  connectNats,
  connectNatsInBackground,
  installConnectionResetGuard,
  NatsConnectError,
} from "./connection.ts";
import { noCredentials, userPasswordCredentials } from "./credentials.ts";
import { startNatsServer } from "../../sandbox/nats_server.ts";
import { captureLogger, nextStatus } from "../../testing/nats.ts";
import { eventually } from "../../testing/eventually.ts";
import { makeTestCertificates } from "../../testing/tls.ts";
import { tempDir } from "../../testing/temp_dir.ts";
import { freePort } from "../process.ts";
import type { NatsTls } from "./transport.ts";

const users = `authorization {
  users = [
    { user: "dev", password: "s3cret" },
    { user: "narrow", password: "pw", permissions: { publish: { deny: ["forbidden.>"] } } }
  ]
}`;

Deno.test("connectNats() logs connection loss, retries and reconnection in plain words", async () => {
  await using ns = await startNatsServer();
  const { logger, lines } = captureLogger();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "test",
    logger,
  });
  try {
    const where = `127.0.0.1:${ns.port}`;
    assert.ok(
      lines.some((l) => l.includes(`INFO  Connected to NATS at ${where}`)),
      lines.join("\n"),
    );

    const started = Date.now();
    const reconnected = nextStatus(nc, "reconnect");
    await ns.kill();
    await eventually("the loss line", () => lines.some((l) => l.includes("Lost connection")));
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    await ns.restart();
    await reconnected;
    const downFor = Date.now() - started;
    await eventually("the reconnect line", () => lines.some((l) => l.includes("Reconnected")));

    assert.ok(
      lines.some((l) =>
        l.includes(
          `WARN  Lost connection to NATS at ${where}; reconnecting in the background ` +
            `(running containers are not affected)`,
        )
      ),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((l) => new RegExp(`INFO  Reconnected to NATS at ${where} after \\d`).test(l)),
    );
    // ~4-5 failed attempts in that time; thinned to attempts 1, 2, 4.
    const stillTrying = lines.filter((l) => l.includes("Still trying to reach NATS"));
    assert.ok(stillTrying.length >= 2 && stillTrying.length <= 3, lines.join("\n"));
    assert.ok(downFor < 8_000, `reconnected ${downFor} ms after the crash`);
  } finally {
    await nc.close();
  }
  await eventually("the close line", () => lines.some((l) => l.includes("Closed the connection")));
});

Deno.test("connectNats() waits while NATS is down at start, then connects when it comes up", async () => {
  await using ns = await startNatsServer();
  await ns.stop();
  const { logger, lines } = captureLogger();
  let connected = false;
  const pending = connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "test",
    logger,
  }).then((nc) => {
    connected = true;
    return nc;
  });
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  assert.equal(connected, false, "still pending, neither connected nor rejected");
  const cannotReach = lines.filter((l) =>
    l.includes(`WARN  Cannot connect to NATS at 127.0.0.1:${ns.port}`)
  );
  assert.ok(cannotReach.length >= 1 && cannotReach.length <= 2, lines.join("\n"));
  await ns.restart();
  const nc = await pending;
  assert.equal(nc.isClosed(), false);
  await nc.close();
});

Deno.test("connectNats() stops trying when its signal aborts", async () => {
  await using ns = await startNatsServer();
  await ns.stop();
  const controller = new AbortController();
  const pending = connectNats({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "test",
    logger: silentLogger,
    signal: controller.signal,
  });
  setTimeout(() => controller.abort(), 300);
  await assert.rejects(pending, (err: unknown) => {
    assert.ok(err instanceof NatsConnectError);
    assert.match(err.message, /Stopped connecting to NATS at 127\.0\.0\.1:\d+ before/);
    return true;
  });
});

Deno.test("connectNatsInBackground() resolves undefined when stopped before NATS came up", async () => {
  await using ns = await startNatsServer();
  await ns.stop();
  const controller = new AbortController();
  const background = connectNatsInBackground({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "agent",
    logger: silentLogger,
    signal: controller.signal,
  });
  controller.abort();
  assert.equal(await background, undefined);
});

Deno.test("connectNatsInBackground() resolves with the connection once NATS is up", async () => {
  await using ns = await startNatsServer();
  await ns.stop();
  const controller = new AbortController();
  const background = connectNatsInBackground({
    servers: [ns.url],
    credentials: noCredentials(),
    name: "agent",
    logger: silentLogger,
    signal: controller.signal,
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  await ns.restart();
  const nc = await background;
  assert.ok(nc);
  await nc.close();
});

Deno.test("connectNats() with waitOnFirstConnect false fails at once, naming the server", async () => {
  await using ns = await startNatsServer();
  await ns.stop();
  await assert.rejects(
    connectNats({
      servers: [ns.url],
      credentials: noCredentials(),
      name: "test",
      logger: silentLogger,
      waitOnFirstConnect: false,
    }),
    (err: unknown) => {
      assert.ok(err instanceof NatsConnectError);
      assert.match(err.message, new RegExp(`Cannot connect to NATS at 127\\.0\\.0\\.1:${ns.port}`));
      return true;
    },
  );
});

Deno.test("connectNats() rejects an empty server list with a clear message", async () => {
  await assert.rejects(
    connectNats({ servers: [], credentials: noCredentials(), name: "t", logger: silentLogger }),
    /Invalid NATS server list \[\]: give at least one URL/,
  );
});

Deno.test("connectNats() uses user/password credentials and names them on rejection", async () => {
  await using ns = await startNatsServer({ extraConfig: users });
  const nc = await connectNats({
    servers: [ns.url],
    credentials: userPasswordCredentials("dev", "s3cret"),
    name: "test",
    logger: silentLogger,
  });
  await nc.close();
  await assert.rejects(
    connectNats({
      servers: [ns.url],
      credentials: userPasswordCredentials("dev", "wrong"),
      name: "test",
      logger: silentLogger,
      waitOnFirstConnect: false,
    }),
    (err: unknown) => {
      assert.ok(err instanceof NatsConnectError);
      assert.match(err.message, /the server rejected user "dev" with a password/);
      assert.doesNotMatch(err.message, /wrong/);
      return true;
    },
  );
});

Deno.test("the connection-reset guard keeps the process alive through failed TCP auth", async () => {
  // Without the guard, Deno's Node compatibility layer kills the process with an uncaught
  // ECONNRESET in most of these attempts (DESIGN.md §8).
  installConnectionResetGuard(silentLogger);
  await using ns = await startNatsServer({ extraConfig: users });
  for (let i = 0; i < 30; i++) {
    await assert.rejects(connectNats({
      servers: [ns.url],
      credentials: userPasswordCredentials("dev", "wrong"),
      name: "test",
      logger: silentLogger,
      waitOnFirstConnect: false,
    }));
  }
  // Give a late reset the time to surface before the test ends.
  await new Promise((resolve) => setTimeout(resolve, 200));
});

Deno.test("connectNats() logs a permission violation as a warning naming the subject", async () => {
  await using ns = await startNatsServer({ extraConfig: users });
  const { logger, lines } = captureLogger();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: userPasswordCredentials("narrow", "pw"),
    name: "test",
    logger,
  });
  try {
    nc.publish("forbidden.x", "hello");
    await eventually("the permission warning", () => lines.some((l) => l.includes("refused")));
    assert.ok(
      lines.some((l) =>
        l.includes(`WARN  NATS refused permission to publish on "forbidden.x"`) &&
        l.includes(`credentials="user \\"narrow\\" with a password"`)
      ),
      lines.join("\n"),
    );
  } finally {
    await nc.close();
  }
});

Deno.test("connectNats() keeps asking a failing credential source, then connects", async () => {
  await using ns = await startNatsServer();
  const { logger, lines } = captureLogger();
  let calls = 0;
  const flaky = {
    kind: "flaky",
    connectionOptions: () => {
      calls++;
      return calls < 3
        ? Promise.reject(new Error("token endpoint unreachable"))
        : Promise.resolve({});
    },
    describe: () => "a test token",
  };
  const nc = await connectNats({ servers: [ns.url], credentials: flaky, name: "t", logger });
  await nc.close();
  assert.equal(calls, 3);
  assert.ok(
    lines.some((l) =>
      l.includes(
        "WARN  Cannot get the credentials for NATS (a test token): token endpoint unreachable; " +
          "still trying in the background",
      )
    ),
    lines.join("\n"),
  );
});

/** A TLS nats-server (TCP and WebSocket) with certificates for 127.0.0.1, and a stranger CA. */
async function tlsServer(dir: string, altNames = ["IP:127.0.0.1"]) {
  const certs = await makeTestCertificates(dir, "fleet", altNames);
  const stranger = await makeTestCertificates(dir, "stranger", ["IP:127.0.0.1"]);
  const ns = await startNatsServer({ tls: certs, websocket: true });
  return { ns, certs, stranger };
}

function connectOnce(servers: string[], tls: NatsTls) {
  return connectNats({
    servers,
    credentials: noCredentials(),
    name: "test",
    logger: silentLogger,
    waitOnFirstConnect: false,
    tls,
  });
}

Deno.test("connectNats() connects over tls:// and wss:// with the CA file, and with the pin", async () => {
  await using dir = await tempDir("fleet-tls-");
  const { ns, certs } = await tlsServer(dir.path);
  await using _ns = ns;
  assert.match(ns.url, /^tls:\/\//);
  for (
    const nc of [
      await connectOnce([ns.url], { caFile: certs.caFile }),
      await connectOnce([ns.url], { caFile: certs.caFile, pin: certs.pin }),
      await connectOnce([ns.wsUrl ?? ""], { caFile: certs.caFile }),
    ]
  ) {
    assert.equal(nc.info?.tls_required, true);
    await nc.flush();
    await nc.close();
  }
});

Deno.test("connectNats() refuses a server whose certificate is from another CA, has another key or another name", async () => {
  await using dir = await tempDir("fleet-tls-");
  const { ns, certs, stranger } = await tlsServer(dir.path, ["DNS:localhost"]);
  await using _ns = ns;
  const refused = async (servers: string[], tls: NatsTls, why: RegExp) => {
    await assert.rejects(connectOnce(servers, tls), (err: unknown) => {
      assert.ok(err instanceof NatsConnectError, String(err));
      assert.match(err.message, why);
      return true;
    });
  };
  const byName = ns.url.replace("127.0.0.1", "localhost");
  await refused([byName], { caFile: stranger.caFile }, /certificate/i);
  await refused([byName], { caFile: certs.caFile, pin: stranger.pin }, /does not match the pin/);
  // Issued for localhost, not for the address the URL names.
  await refused([ns.url], { caFile: certs.caFile }, /not issued for 127\.0\.0\.1/);
  const nc = await connectOnce([byName], { caFile: certs.caFile, pin: certs.pin });
  await nc.close();
});

Deno.test("connectNats() refuses to send a bearer token in clear beyond loopback", async () => {
  const bearer = { ...noCredentials(), kind: "test-token", bearer: true };
  await assert.rejects(
    connectNats({
      servers: ["nats://192.0.2.2:4222"],
      credentials: bearer,
      name: "t",
      logger: silentLogger,
    }),
    (err: unknown) => {
      assert.ok(err instanceof NatsConnectError);
      assert.equal(err.kind, "usage", "a usage error: exit code 2");
      assert.match(
        err.message,
        /Refusing to send an OIDC access token to NATS at nats:\/\/192\.0\.2\.2:4222 without TLS.*--nats-ca/,
      );
      return true;
    },
  );
  await using ns = await startNatsServer();
  const nc = await connectNats({
    servers: [ns.url],
    credentials: bearer,
    name: "t",
    logger: silentLogger,
  });
  await nc.close();
});

Deno.test("connectNats() over ws:// reports one lost connection and one reconnect however many attempts failed", async () => {
  await using ns = await startNatsServer({ websocket: true });
  const { logger, lines } = captureLogger();
  const nc = await connectNats({
    servers: [ns.wsUrl ?? ""],
    credentials: noCredentials(),
    name: "test",
    logger,
  });
  try {
    const seen: string[] = [];
    void (async () => {
      for await (const s of nc.status()) seen.push(s.type);
    })();
    await ns.kill();
    await eventually(
      "three failed attempts",
      () => seen.filter((t) => t === "reconnecting").length >= 3,
    );
    await ns.restart();
    await eventually("the reconnect", () => seen.includes("reconnect"));
    await nc.flush();
    const count = (type: string) => seen.filter((t) => t === type).length;
    assert.deepEqual([count("disconnect"), count("reconnect")], [1, 1], seen.join(","));
    assert.equal(lines.filter((l) => l.includes("Lost connection")).length, 1, lines.join("\n"));
    assert.equal(lines.filter((l) => l.includes("Reconnected")).length, 1, lines.join("\n"));
    assert.ok(
      lines.some((l) => /Still trying to reach NATS .* attempt=2/.test(l)),
      lines.join("\n"),
    );
  } finally {
    await nc.close();
  }
});

Deno.test("connectNats() over WebSocket stays on the configured URL, not the servers a cluster advertises", async () => {
  // Behind a route, the servers a cluster advertises are its pods' own ws:// listeners: from a
  // device unreachable at best, at worst someone else's address, and in clear.
  const routes = [freePort(), freePort()];
  const member = (i: number) =>
    `server_name: "n${i}"\ncluster { name: "c", listen: "127.0.0.1:${routes[i]}", ` +
    `routes: ["nats-route://127.0.0.1:${routes[1 - i]}"] }`;
  await using a = await startNatsServer({ websocket: true, extraConfig: member(0) });
  await using b = await startNatsServer({ websocket: true, extraConfig: member(1) });
  // The library's own behaviour: it learns b's URL from a, and moves there when a is gone.
  const raw = await wsconnect({ servers: [a.wsUrl ?? ""], maxReconnectAttempts: -1 });
  const bHost = new URL(b.wsUrl ?? "").host;
  await eventually("a to advertise b", () => raw.info?.connect_urls?.includes(bHost));
  const nc = await connectNats({
    servers: [a.wsUrl ?? ""],
    credentials: noCredentials(),
    name: "test",
    logger: silentLogger,
  });
  try {
    await eventually("a to advertise b to it too", () => nc.info?.connect_urls?.includes(bHost));
    const seen: string[] = [];
    void (async () => {
      for await (const s of nc.status()) seen.push(s.type);
    })();
    const rawMoved = nextStatus(raw, "reconnect");
    await a.kill();
    await rawMoved;
    assert.equal(raw.getServer(), bHost, "the library moved to b");
    await eventually("three attempts at a alone", () => {
      assert.ok(!seen.includes("reconnect"), `it moved to b: ${seen.join(",")}`);
      return seen.filter((t) => t === "reconnecting").length >= 3;
    });
  } finally {
    await raw.close();
    await nc.close();
  }
});

Deno.test("connectNats() over ws:// sends CONNECT and PING in one frame: no Nagle wait for a delayed ACK", async () => {
  // A server that speaks just enough NATS over WebSocket, keeping every frame it receives.
  const frames: string[] = [];
  const info = `INFO {"server_id":"FAKE","version":"2.10.27","proto":1,"headers":true,` +
    `"max_payload":1048576}\r\n`;
  await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send(new TextEncoder().encode(info));
    socket.onmessage = (event) => {
      const text = new TextDecoder().decode(event.data as ArrayBuffer);
      frames.push(text);
      if (text.includes("PING")) socket.send(new TextEncoder().encode("PONG\r\n"));
    };
    return response;
  });
  const nc = await connectNats({
    servers: [`ws://127.0.0.1:${server.addr.port}`],
    credentials: noCredentials(),
    name: "test",
    logger: silentLogger,
    waitOnFirstConnect: false,
  });
  await nc.close();
  assert.match(frames[0] ?? "", /^CONNECT \{.*\}\r\nPING\r\n$/, JSON.stringify(frames));
});
