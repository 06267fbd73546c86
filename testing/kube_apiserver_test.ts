import assert from "node:assert/strict";
import { KubeApiServerError, startKubeApiServer } from "./kube_apiserver.ts";

Deno.test("startKubeApiServer() says how to build the binaries when they are missing", async () => {
  await assert.rejects(
    startKubeApiServer({ binDir: "/nonexistent/kube-bin" }),
    (err: unknown) => {
      assert.ok(err instanceof KubeApiServerError);
      assert.match(err.message, /\/nonexistent\/kube-bin\/kube-apiserver does not exist/);
      assert.match(err.message, /bash scripts\/build-kube-test-bins\.sh/);
      assert.match(err.message, /FLEET_KUBE_BIN_DIR/);
      return true;
    },
  );
});
