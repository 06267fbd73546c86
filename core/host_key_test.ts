import assert from "node:assert/strict";
import { decideHostKey, hostKeyFingerprint, hostKeysFor, knownHostsName } from "./host_key.ts";

// Blobs of two real ed25519 host keys (public halves).
const A = "AAAAC3NzaC1lZDI1NTE5AAAAIMFUcM3UkR6Kr1wA2rmTm479r35f/wL8P44/XtM8UFWn";
const B = "AAAAC3NzaC1lZDI1NTE5AAAAIJ4vZ0dMxYq1sF0a2bQ7x8m3Kk0pXy7Vt6cH1oR2sT9u";
const key = async (blob: string, type = "ssh-ed25519") => ({
  type,
  blob,
  fingerprint: await hostKeyFingerprint(blob),
});
const base = { where: "pi@10.0.0.7:22", knownHostsFile: "/kh", trustOnFirstUse: false };

Deno.test("hostKeyFingerprint() is what ssh-keygen -lf prints", async () => {
  assert.equal(await hostKeyFingerprint(A), "SHA256:iGFdFDVM8OXBmy/xGXqD7g4wu095K9LNjg1+80ne65U");
});

Deno.test("hostKeysFor() reads the keys of one name, skipping comments, markers and others", async () => {
  const text = [
    "# 10.0.0.7:22 SSH-2.0-OpenSSH_9.2",
    `[10.0.0.7]:2222 ssh-ed25519 ${A}`,
    `other,[10.0.0.7]:2222 ssh-rsa ${B}`,
    `@revoked [10.0.0.7]:2222 ssh-ed25519 ${B}`,
    `10.0.0.7 ssh-ed25519 ${B}`,
    "",
  ].join("\n");
  const keys = await hostKeysFor(text, knownHostsName("10.0.0.7", 2222));
  assert.deepEqual(keys.map((k) => [k.type, k.blob]), [["ssh-ed25519", A], ["ssh-rsa", B]]);
  assert.equal(knownHostsName("10.0.0.7", 22), "10.0.0.7");
});

Deno.test("decideHostKey() refuses an unknown host unless pinned or trusted on first use", async () => {
  const seen = [await key(B, "ssh-rsa"), await key(A)];
  const refused = decideHostKey({ ...base, seen, known: [] });
  assert.ok("refuse" in refused);
  assert.match(refused.refuse, /is unknown .*--host-key-fingerprint SHA256:iGFdFDVM8OXB/);
  assert.deepEqual(decideHostKey({ ...base, seen, known: [], trustOnFirstUse: true }), {
    accept: seen[1],
    record: true,
  });
  assert.deepEqual(
    decideHostKey({ ...base, seen, known: [], fingerprint: seen[0]!.fingerprint }),
    { accept: seen[0], record: true },
  );
});

Deno.test("decideHostKey() names the key seen and the one expected on a mismatch", async () => {
  const a = await key(A);
  const b = await key(B);
  const changed = decideHostKey({ ...base, seen: [b], known: [a], trustOnFirstUse: true });
  assert.ok("refuse" in changed, "trust on first use does not cover a changed key");
  assert.match(changed.refuse, new RegExp(`presented ${b.fingerprint.replace(/[+/]/g, "\\$&")}`));
  assert.match(changed.refuse, new RegExp(`expected ${a.fingerprint.replace(/[+/]/g, "\\$&")}`));
  const pinned = decideHostKey({ ...base, seen: [b], known: [], fingerprint: a.fingerprint });
  assert.ok("refuse" in pinned);
  assert.match(pinned.refuse, /does not match: .*--host-key-fingerprint/);
  assert.deepEqual(decideHostKey({ ...base, seen: [b, a], known: [a] }), {
    accept: a,
    record: false,
  });
});
