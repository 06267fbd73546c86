import assert from "node:assert/strict";
import { stopChild } from "./process.ts";

Deno.test("stopChild() does not throw when the child exits between the timeout and the SIGKILL", async () => {
  const child = new Deno.Command("true", { stdout: "null", stderr: "null" }).spawn();
  await child.status;
  // Its exit is seen only after the timeout: the SIGKILL finds it gone (a 100k bench died so).
  const exitedLate = new Promise<void>((resolve) => setTimeout(resolve, 50));
  await stopChild(child, exitedLate, "SIGTERM", 5);
  assert.equal((await child.status).code, 0);
});
