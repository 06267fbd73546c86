import assert from "node:assert/strict";
import {
  agentCommandLine,
  agentDenoPermissions,
  agentUnit,
  agentUnitUserDropIn,
  controlFile,
  debFileName,
  debVersion,
  DEVICE_AGENT_PATHS,
  launcherScript,
  PackagingError,
  postinstScript,
  prermScript,
} from "./deb.ts";

Deno.test("debFileName() and debVersion() follow Debian's naming", () => {
  assert.equal(debFileName("0.1.0", "arm64"), "fleet_0.1.0_arm64.deb");
  assert.equal(debVersion("1.2.0-rc.1"), "1.2.0~rc.1", "a pre-release sorts before the release");
  assert.throws(() => debVersion("v1.0"), PackagingError);
  assert.throws(() => debVersion("1.0 beta"), /must start with a digit/);
});

Deno.test("controlFile() names the package, version, arch and a folded description", () => {
  const control = controlFile({ version: "0.3.0", arch: "amd64", installedSizeKb: 1234.2 });
  const fields = new Map(
    control.split("\n").filter((l) => /^\S+: /.test(l)).map((l) => {
      const at = l.indexOf(": ");
      return [l.slice(0, at), l.slice(at + 2)] as const;
    }),
  );
  assert.equal(fields.get("Package"), "fleet");
  assert.equal(fields.get("Version"), "0.3.0");
  assert.equal(fields.get("Architecture"), "amd64");
  assert.equal(fields.get("Installed-Size"), "1235");
  assert.match(fields.get("Recommends") ?? "", /podman/);
  assert.ok(control.endsWith("\n"), "dpkg-deb wants a final newline");
  for (const line of control.split("\n").filter((l) => l.startsWith(" "))) {
    assert.ok(line.length <= 80, `description lines stay short: "${line}"`);
  }
});

Deno.test("the agent unit restarts forever with backoff after the network is up, to the journal", () => {
  const unit = agentUnit();
  const has = (line: string) => assert.ok(unit.split("\n").includes(line), line);
  has("After=network-online.target");
  has("Wants=network-online.target");
  has("StartLimitIntervalSec=0");
  has("Restart=always");
  has("RestartSteps=6");
  has("RestartMaxDelaySec=2min");
  has("User=fleet-agent");
  const agent = agentCommandLine([]);
  has(`ExecStartPre=/bin/sh -c '${agent} agent --help >/dev/null'`);
  has(`ExecStart=${agent} agent run --config /etc/fleet-agent/config.toml`);
  has("Environment=DENO_DIR=/var/cache/fleet-agent");
  has("StandardOutput=journal");
  has("SyslogIdentifier=fleet-agent");
  has("WantedBy=multi-user.target");
  // A smaller V8 young generation for the agent only (bench:agent: about 4 MB less idle).
  has("Environment=DENO_V8_FLAGS=--max-semi-space-size=1,--lite-mode,--expose-gc");
  // A CA installed on the device (update-ca-certificates) is trusted for NATS and OIDC.
  has("Environment=DENO_TLS_CA_STORE=system,mozilla");
  // journald's lines without colour codes; no check for a newer Deno on every start.
  has("Environment=NO_COLOR=1");
  has("Environment=DENO_NO_UPDATE_CHECK=1");
});

Deno.test("the agent runs in a sandbox: no privileges, nothing writable but its own directories", () => {
  const unit = agentUnit().split("\n");
  for (
    const line of [
      "NoNewPrivileges=yes",
      "CapabilityBoundingSet=",
      "AmbientCapabilities=",
      "ProtectSystem=strict",
      "StateDirectory=fleet-agent",
      "CacheDirectory=fleet-agent",
      "ProtectHome=read-only",
      "PrivateTmp=yes",
      "PrivateDevices=yes",
      "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
      "SystemCallFilter=@system-service",
      "MemoryMax=256M",
    ]
  ) assert.ok(unit.includes(line), line);
  // Nothing else is made writable: the state and cache directories are, by systemd.
  assert.deepEqual(unit.filter((l) => l.startsWith("ReadWritePaths=")), []);
});

Deno.test("the agent's Deno permissions name what it writes and uses instead of --allow-all", () => {
  const flags = agentDenoPermissions(DEVICE_AGENT_PATHS);
  assert.deepEqual(flags, [
    "--no-prompt",
    "--allow-read",
    "--allow-write=/var/lib/fleet-agent,/run/user",
    "--allow-net",
    "--allow-env=INVOCATION_ID,JOURNAL_STREAM,NO_COLOR,FLEET_AGENT_CONFIG,FLEET_LOG_LEVEL,FLEET_LOG_FORMAT,HOME,XDG_RUNTIME_DIR",
    "--allow-sys=hostname,osRelease,systemMemoryInfo",
    "--allow-ffi=/usr/lib/x86_64-linux-gnu/libc.so.6,/lib/x86_64-linux-gnu/libc.so.6,/usr/lib/aarch64-linux-gnu/libc.so.6,/lib/aarch64-linux-gnu/libc.so.6",
  ]);
  const agent = agentCommandLine(["agent", "run"]);
  assert.ok(agent.startsWith("/usr/lib/fleet/deno run --no-config "), agent);
  assert.ok(agent.endsWith(" /usr/lib/fleet/app/main.js agent run"), agent);
  for (const broad of ["--allow-all", "-A ", "--allow-run", "--allow-ffi ", "--allow-import"]) {
    assert.ok(!agent.includes(broad), `${broad} in ${agent}`);
  }
  assert.equal(agent.split(" --allow-ffi=").length, 2, "one library: the C library");
});

Deno.test("the agent's drop-in orders it after its user's systemd, which holds podman", () => {
  const dropIn = agentUnitUserDropIn(1001).split("\n");
  assert.ok(dropIn.includes("[Unit]"));
  assert.ok(dropIn.includes("Wants=user@1001.service"));
  assert.ok(dropIn.includes("After=user@1001.service"));
  for (const uid of [-1, 1.5, Number.NaN]) {
    assert.throws(() => agentUnitUserDropIn(uid), PackagingError);
  }
});

Deno.test("the launcher and maintainer scripts are POSIX sh that never stop the agent on upgrade", () => {
  for (const script of [launcherScript(), postinstScript(), prermScript()]) {
    assert.ok(script.startsWith("#!/bin/sh\n"));
    assert.match(script, /^set -e$/m);
  }
  assert.match(launcherScript(), /exec "\$lib\/deno" run --allow-all --no-config/);
  assert.match(launcherScript(), /^: "\$\{DENO_TLS_CA_STORE:=system,mozilla\}"$/m);
  assert.match(prermScript(), /"\$1" = remove/, "prerm stops the agent only on removal");
  assert.match(postinstScript(), /try-restart fleet-agent/);
});
