import assert from "node:assert/strict";
import { isLoopbackHost } from "./network.ts";

Deno.test("isLoopbackHost() accepts localhost, 127.0.0.0/8 and ::1 only", () => {
  for (const host of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]"]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (
    const host of ["192.0.2.2", "10.0.0.1", "localhost.example.com", "127.0.0.1.nip.io", "::", ""]
  ) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});
