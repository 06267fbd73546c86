import assert from "node:assert/strict";
import { sshArgs, urlsFromGuest, validateVmName } from "./instance.ts";
import { VmUsageError } from "./errors.ts";

Deno.test("validateVmName() takes DNS labels only", () => {
  assert.equal(validateVmName("vm-1"), "vm-1");
  for (const bad of ["", "VM1", "-vm", "vm-", "a/b", "x".repeat(64)]) {
    assert.throws(() => validateVmName(bad), VmUsageError, bad);
  }
});

Deno.test("sshArgs() logs in with the VM's key and known_hosts, never prompting", () => {
  const args = sshArgs({
    address: { user: "fleet", host: "127.0.0.1", port: 40022 },
    identityFile: "/vms/vm1/id_ed25519",
    knownHostsFile: "/vms/vm1/known_hosts",
  }, ["uname", "-m"]);
  assert.deepEqual(args.slice(-6), ["-p", "40022", "fleet@127.0.0.1", "--", "uname", "-m"]);
  for (
    const option of [
      "BatchMode=yes",
      "IdentitiesOnly=yes",
      "StrictHostKeyChecking=accept-new",
      "UserKnownHostsFile=/vms/vm1/known_hosts",
    ]
  ) {
    assert.ok(args.includes(option), option);
  }
  assert.equal(args[args.indexOf("-i") + 1], "/vms/vm1/id_ed25519");
});

Deno.test("urlsFromGuest() points loopback URLs at the host as the guest sees it", () => {
  assert.deepEqual(
    urlsFromGuest([
      "nats://127.0.0.1:4222",
      "nats://localhost:4223",
      "nats://[::1]:4224",
      "nats://user:secret@127.0.0.1:4225",
      "tls://127.0.0.1:4443",
    ]),
    [
      "nats://10.0.2.2:4222",
      "nats://10.0.2.2:4223",
      "nats://10.0.2.2:4224",
      "nats://user:secret@10.0.2.2:4225",
      "tls://10.0.2.2:4443",
    ],
  );
});

Deno.test("urlsFromGuest() leaves other hosts and text that is not a URL alone", () => {
  const others = ["nats://10.0.0.5:4222", "nats://nats.example.com:4222", "127.0.0.1:4222"];
  assert.deepEqual(urlsFromGuest(others), others);
});
