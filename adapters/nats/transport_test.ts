import assert from "node:assert/strict";
import {
  certificateRefusal,
  plaintextTokenProblem,
  planTransport,
  secretTransportProblem,
  serverHosts,
} from "./transport.ts";

const PIN = "sha256//YGKWvf/F7SwqdyaraHlK85EEZLyr/MwswX8LacOr288=";

Deno.test("planTransport() makes a TCP list encrypted by tls:// or by a CA or pin", () => {
  assert.deepEqual(planTransport(["nats://10.0.0.5:4222", "10.0.0.6:4222"], {}), {
    kind: "tcp",
    plaintext: ["nats://10.0.0.5:4222", "10.0.0.6:4222"],
  });
  assert.deepEqual(planTransport(["tls://10.0.0.5:4222"], {}), { kind: "tcp", plaintext: [] });
  assert.deepEqual(planTransport(["nats://10.0.0.5:4222"], { caFile: "/ca.pem" }), {
    kind: "tcp",
    plaintext: [],
  });
  assert.deepEqual(planTransport(["nats://10.0.0.5:4222"], { pin: PIN }), {
    kind: "tcp",
    plaintext: [],
  });
});

Deno.test("planTransport() judges WebSocket URLs one by one and refuses a pin for them", () => {
  assert.deepEqual(planTransport(["wss://nats.example.com", "ws://127.0.0.1:8080"], {}), {
    kind: "websocket",
    plaintext: ["ws://127.0.0.1:8080"],
  });
  const pinned = planTransport(["wss://nats.example.com"], { pin: PIN });
  assert.equal(pinned.kind, "invalid");
  assert.match(pinned.kind === "invalid" ? pinned.problem : "", /pin needs tls:\/\/ URLs/);
});

Deno.test("planTransport() refuses mixed transports, unknown schemes and a malformed pin", () => {
  const problem = (servers: string[], pin?: string) => {
    const plan = planTransport(servers, pin === undefined ? {} : { pin });
    return plan.kind === "invalid" ? plan.problem : "";
  };
  assert.match(problem(["wss://a:443", "tls://b:4222"]), /mix WebSocket .* and TCP URLs/);
  assert.match(problem(["https://a:443"]), /"https:\/\/a:443" has an unknown scheme/);
  assert.match(problem(["tls://a:4222"], "B3:0A:BC"), /pin "B3:0A:BC" is not sha256\/\//);
});

Deno.test("plaintextTokenProblem() allows loopback only and says what to do", () => {
  assert.equal(
    plaintextTokenProblem(["nats://127.0.0.1:4222", "localhost:4222", "ws://[::1]:80"]),
    undefined,
  );
  const problem = plaintextTokenProblem(["nats://127.0.0.1:4222", "nats://192.0.2.2:4222"]);
  assert.match(problem ?? "", /to NATS at nats:\/\/192\.0\.2\.2:4222 without TLS/);
  assert.doesNotMatch(problem ?? "", /127\.0\.0\.1:4222/);
  assert.match(problem ?? "", /Use tls:\/\/ \(or wss:\/\/\) URLs and pass the CA .*--nats-ca/);
});

Deno.test("serverHosts() lists each host once, IPv6 without brackets", () => {
  assert.deepEqual(
    serverHosts(["tls://a.example:4222", "a.example:4222", "tls://user@[::1]:4222", "wss://b/x"]),
    ["a.example", "::1", "b"],
  );
});

Deno.test("secretTransportProblem() names the secret, and passes TLS lists and loopback", () => {
  assert.match(
    secretTransportProblem(["nats://10.0.0.5:4222"], {}, "the callout's password") ?? "",
    /^Refusing to send the callout's password to NATS at nats:\/\/10\.0\.0\.5:4222 without TLS/,
  );
  assert.equal(secretTransportProblem(["nats://10.0.0.5:4222"], { caFile: "/ca.pem" }), undefined);
  assert.equal(secretTransportProblem(["nats://127.0.0.1:4222"], {}), undefined);
  assert.match(secretTransportProblem(["ws://a:80", "b:4222"], {}) ?? "", /mix WebSocket/);
});

Deno.test("certificateRefusal() says which CA was trusted and how to give the right one", () => {
  const ws =
    "NetworkError: failed to connect to WebSocket: invalid peer certificate: UnknownIssuer";
  assert.equal(
    certificateRefusal(ws, { caFile: "/etc/fleet-agent/nats-ca.pem" }),
    `its TLS certificate is not signed by the CA in /etc/fleet-agent/nats-ca.pem (${ws}); if ` +
      `this is the right server, give the PEM file of the CA that signed its certificate ` +
      `(--nats-ca, or ca_file under [nats] in a config file)`,
  );
  assert.match(
    certificateRefusal("unable to verify the first certificate", {}) ?? "",
    /^its TLS certificate is not signed by a CA this machine trusts \(unable to verify/,
  );
  assert.match(
    certificateRefusal(
      'invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is ' +
        'only valid for DnsName("localhost")',
      {},
    ) ?? "",
    /^its TLS certificate is not issued for the host in the URL \(.*\); use the name or address/,
  );
  assert.match(
    certificateRefusal("invalid peer certificate: Expired", {}) ?? "",
    /outside its validity period .*check this machine's clock/,
  );
  assert.equal(certificateRefusal("tcp connect error: Connection refused", {}), undefined);
});
