import assert from "node:assert/strict";
import { LocalTarget, shellQuote, type Target, TargetError } from "./target.ts";
import { parseSshTarget, SshTarget } from "./ssh_target.ts";
import { startSshServer } from "../../testing/sshd.ts";

const noPrompt = () => Promise.resolve(undefined);

Deno.test("shellQuote() makes any argument one word for sh", async () => {
  const nasty = ["plain", "two words", "it's", "$(id)", "a\nb", "*", "", "-n", `"q"`, "ü"];
  const script = nasty.map(shellQuote).join(" ");
  const r = await new Deno.Command("sh", {
    args: ["-c", `for a in ${script}; do printf '[%s]' "$a"; done`],
  }).output();
  assert.equal(new TextDecoder().decode(r.stdout), nasty.map((a) => `[${a}]`).join(""));
});

Deno.test("parseSshTarget() takes ssh://user@host[:port] and names what is wrong", () => {
  assert.deepEqual(parseSshTarget("ssh://pi@10.0.0.7"), { user: "pi", host: "10.0.0.7", port: 22 });
  assert.deepEqual(parseSshTarget("ssh://admin@pi-7.lan:2222"), {
    user: "admin",
    host: "pi-7.lan",
    port: 2222,
  });
  assert.deepEqual(parseSshTarget("ssh://root@[::1]:22"), { user: "root", host: "::1", port: 22 });
  for (
    const bad of ["pi@10.0.0.7", "ssh://10.0.0.7", "http://pi@h", "ssh://pi:pw@h", "ssh://pi@h/x"]
  ) {
    assert.throws(() => parseSshTarget(bad), (e: Error) => {
      assert.ok(e instanceof TargetError);
      assert.match(e.message, new RegExp(`--target "${bad.replace(/[[\]/.?*+]/g, "\\$&")}"`));
      return true;
    });
  }
});

/** What every target must do, on a real machine. */
async function exerciseTarget(target: Target) {
  const echo = await target.run(["sh", "-c", 'printf "%s|%s" "$1" "$2"', "sh", "a b", "it's"]);
  assert.deepEqual(echo, { code: 0, stdout: "a b|it's", stderr: "" });
  const failed = await target.run(["sh", "-c", "echo oops >&2; exit 3"]);
  assert.equal(failed.code, 3);
  assert.equal(failed.stderr, "oops\n");
  const big = "x".repeat(3 * 1024 * 1024);
  const counted = await target.run(["wc", "-c"], { stdin: big, sudo: true });
  assert.equal(counted.stdout.trim(), String(big.length), "stdin arrives whole, also with sudo");
  const root = await target.run(["id", "-u"], { sudo: true });
  assert.equal(root.stdout.trim(), "0");
}

Deno.test("LocalTarget runs argv with stdin, exit codes and sudo", async () => {
  await using target = new LocalTarget(noPrompt);
  assert.equal(target.description, "this machine");
  await exerciseTarget(target);
});

Deno.test("SshTarget runs the same over a real sshd, and says why a login fails", async () => {
  await using sshd = await startSshServer();
  const address = { user: "root", host: "127.0.0.1", port: sshd.port };
  {
    await using target = await SshTarget.connect({
      address,
      identityFile: sshd.clientKey,
      knownHostsFile: sshd.knownHosts,
      prompt: noPrompt,
    });
    assert.equal(target.description, `root@127.0.0.1:${sshd.port}`);
    await exerciseTarget(target);
  }
  const wrongKey = `${await Deno.makeTempDir()}/k`;
  await new Deno.Command("ssh-keygen", { args: ["-q", "-t", "ed25519", "-N", "", "-f", wrongKey] })
    .output();
  await assert.rejects(
    SshTarget.connect({
      address,
      identityFile: wrongKey,
      knownHostsFile: sshd.knownHosts,
      prompt: noPrompt,
    }),
    /Cannot log in to root@127.0.0.1:\d+ over SSH: .*Permission denied.*key authentication/,
  );
});
