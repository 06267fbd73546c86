import assert from "node:assert/strict";
import {
  EnvVar,
  Healthcheck,
  healthcheckTimes,
  MAX_ARG_STRLEN,
  parsePort,
  PodmanService,
  PortMapping,
  resolveScore,
  RestartPolicies,
  WorkloadError,
} from "./score.ts";

Deno.test("parsePort() splits host port, container port and protocol", () => {
  assert.deepStrictEqual(parsePort("8080:80"), {
    hostPort: 8080,
    containerPort: 80,
    protocol: "tcp",
  });
  assert.deepStrictEqual(parsePort("8053:53/udp"), {
    hostPort: 8053,
    containerPort: 53,
    protocol: "udp",
  });
  assert.deepStrictEqual(parsePort("8443:443/tcp"), {
    hostPort: 8443,
    containerPort: 443,
    protocol: "tcp",
  });
});

Deno.test("parsePort() keeps a host IP", () => {
  assert.deepStrictEqual(parsePort("127.0.0.1:8080:80"), {
    hostIp: "127.0.0.1",
    hostPort: 8080,
    containerPort: 80,
    protocol: "tcp",
  });
});

Deno.test("parsePort() throws on a string that never passed validation", () => {
  assert.throws(() => parsePort("80"), /Unvalidated port "80"/);
});

Deno.test("PortMapping accepts the documented forms and the port range bounds", () => {
  for (const port of ["8080:80", "8080:80/udp", "8080:80/tcp", "127.0.0.1:8080:80", "1:65535"]) {
    assert.equal(PortMapping.safeParse(port).success, true, port);
  }
});

Deno.test("PortMapping rejects other forms with a message naming the value", () => {
  for (
    const port of [
      "80",
      "",
      "a:b",
      "8080:80/sctp",
      "0:80",
      "80:0",
      "65536:80",
      "8080-8090:80",
      " 8080:80",
    ]
  ) {
    const result = PortMapping.safeParse(port);
    assert.equal(result.success, false, port);
    assert.match(
      result.error!.issues[0]!.message,
      new RegExp(`port ${JSON.stringify(port)} must be`),
    );
  }
});

Deno.test("PodmanService fills defaults and keeps command and args when given", () => {
  assert.deepStrictEqual(PodmanService.parse({ name: "web", image: "nginx" }), {
    name: "web",
    image: "nginx",
    ports: [],
    env: [],
    volumes: [],
    restartPolicy: "unless-stopped",
  });
  const withCommand = PodmanService.parse({
    name: "job",
    image: "busybox",
    command: ["sh", "-c"],
    args: ["echo hi"],
    volumes: [{ hostPath: "/a", containerPath: "/b" }],
  });
  assert.deepStrictEqual(withCommand.command, ["sh", "-c"]);
  assert.deepStrictEqual(withCommand.args, ["echo hi"]);
  assert.deepStrictEqual(withCommand.volumes, [{
    hostPath: "/a",
    containerPath: "/b",
    readOnly: false,
  }]);
});

Deno.test("RestartPolicies are the four of DESIGN.md §3", () => {
  assert.deepStrictEqual([...RestartPolicies], ["no", "always", "on-failure", "unless-stopped"]);
  for (const restartPolicy of RestartPolicies) {
    assert.equal(
      PodmanService.parse({ name: "a", image: "b", restartPolicy }).restartPolicy,
      restartPolicy,
    );
  }
});

Deno.test("EnvVar takes NAME=value up to 131071 bytes (MAX_ARG_STRLEN with its NUL), counted in UTF-8", () => {
  assert.equal(MAX_ARG_STRLEN, 131_072);
  const fits = "x".repeat(MAX_ARG_STRLEN - 1 - "BIG=".length);
  assert.equal(EnvVar.safeParse({ name: "BIG", value: fits }).success, true);
  for (const value of [fits + "x", fits.slice(1) + "é"]) {
    const result = EnvVar.safeParse({ name: "BIG", value });
    assert.equal(result.success, false);
    const issue = result.error!.issues[0]!;
    assert.deepEqual(issue.path, ["value"]);
    assert.equal(
      issue.message,
      `environment variable "BIG" is 131072 bytes as NAME=value; Linux accepts at most 131071 ` +
        `bytes (MAX_ARG_STRLEN is 131072 with the terminating NUL)`,
    );
  }
});

Deno.test("PodmanService refuses a command or argument longer than MAX_ARG_STRLEN allows", () => {
  const long = "a".repeat(MAX_ARG_STRLEN);
  const result = PodmanService.safeParse({
    name: "job",
    image: "busybox",
    command: ["sh"],
    args: ["-c", long],
  });
  assert.equal(result.success, false);
  assert.deepEqual(result.error!.issues[0]!.path, ["args", 1]);
  assert.match(result.error!.issues[0]!.message, /is 131072 bytes; Linux accepts at most 131071/);
});

Deno.test("resolveScore() fails, for its deployment only, a workload with an environment string too long to start", () => {
  const envelope = {
    type: "PodmanV0",
    data: {
      services: [{
        name: "web",
        image: "nginx",
        env: [{ name: "CERT", value: "x".repeat(200_000) }],
      }],
    },
  };
  assert.throws(
    () => resolveScore(envelope),
    (error: unknown) => {
      assert.ok(error instanceof WorkloadError, String(error));
      assert.match(
        error.message,
        /services\[0\]\.env\[0\]\.value: environment variable "CERT" is 200005 bytes .*at most 131071 bytes/,
      );
      return true;
    },
  );
});

Deno.test("Healthcheck fills podman's defaults and gives its durations in milliseconds", () => {
  const check = Healthcheck.parse({ command: ["wget", "-q", "-O-", "http://127.0.0.1/"] });
  assert.deepStrictEqual(check, {
    command: ["wget", "-q", "-O-", "http://127.0.0.1/"],
    interval: "30s",
    timeout: "30s",
    retries: 3,
    startPeriod: "0s",
  });
  assert.deepStrictEqual(
    healthcheckTimes(Healthcheck.parse({ command: ["true"], interval: "2m", startPeriod: "1m" })),
    { intervalMs: 120_000, timeoutMs: 30_000, startPeriodMs: 60_000 },
  );
});

Deno.test("Healthcheck refuses an empty command, a zero interval or timeout, no retries and a bad duration", () => {
  const problems = (input: unknown) =>
    Healthcheck.safeParse(input).error?.issues.map((i) => i.message) ?? [];
  assert.deepStrictEqual(problems({ command: [] }), ["healthcheck command is empty"]);
  assert.deepStrictEqual(problems({ command: ["true"], interval: "0s", timeout: "0m" }), [
    "healthcheck interval must be at least 1s",
    "healthcheck timeout must be at least 1s",
  ]);
  assert.deepStrictEqual(problems({ command: ["true"], retries: 0 }), [
    "healthcheck retries must be a positive whole number",
  ]);
  assert.match(
    problems({ command: ["true"], startPeriod: "10" })[0] ?? "",
    /"10" is not a duration/,
  );
});

Deno.test("PodmanService without a healthcheck has none (its spec hash is unchanged)", () => {
  const service = PodmanService.parse({ name: "web", image: "nginx" });
  assert.equal("healthcheck" in service, false);
});
