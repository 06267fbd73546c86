import assert from "node:assert/strict";
import { freePort, stopChild } from "./process.ts";

Deno.test("stopChild() does not throw when the child exits between the timeout and the SIGKILL", async () => {
  const child = new Deno.Command("true", { stdout: "null", stderr: "null" }).spawn();
  await child.status;
  // Its exit is seen only after the timeout: the SIGKILL finds it gone (a 100k bench died so).
  const exitedLate = new Promise<void>((resolve) => setTimeout(resolve, 50));
  await stopChild(child, exitedLate, "SIGTERM", 5);
  assert.equal((await child.status).code, 0);
});

Deno.test("freePort() never hands out a port twice", () => {
  // The OS offers a closed port again: 3 NATS servers of one test were given the same one.
  const ports = Array.from({ length: 2_000 }, () => freePort());
  assert.equal(new Set(ports).size, ports.length);
});
