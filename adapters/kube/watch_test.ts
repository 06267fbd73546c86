import assert from "node:assert/strict";
import { KubeApiError, KubeUnavailableError } from "./errors.ts";
import { readWatchEvents, type WatchStreamContext } from "./watch.ts";

function context(idleTimeoutMs?: number): WatchStreamContext {
  const target = { server: "https://127.0.0.1:6443", operation: "watch" };
  return {
    signal: new AbortController().signal,
    errorFor: (status) =>
      new KubeApiError({
        ...target,
        status: status.code ?? 500,
        reason: status.reason ?? "",
        message: status.message ?? "",
        kind: "Thing",
      }),
    lost: (reason, cause) => new KubeUnavailableError({ ...target, reason }, { cause }),
    ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}),
  };
}

Deno.test("readWatchEvents() gives up on a connection that stays silent past the idle timeout", async () => {
  let cancelled = false;
  const silent = new ReadableStream<Uint8Array>({ cancel: () => void (cancelled = true) });
  const events = [];
  await assert.rejects(
    (async () => {
      for await (const e of readWatchEvents(silent, context(50))) events.push(e);
    })(),
    (err: Error) => {
      assert.ok(err instanceof KubeUnavailableError);
      assert.match(err.message, /sent nothing for 0\.05 s; the connection is dead/);
      return true;
    },
  );
  assert.equal(events.length, 0);
  assert.ok(cancelled, "the dead body is cancelled");
});

Deno.test("readWatchEvents() keeps a watch that sends events more often than the idle timeout", async () => {
  const encoder = new TextEncoder();
  let n = 0;
  const ticking = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await new Promise((r) => setTimeout(r, 20));
      if (n === 5) return controller.close();
      const object = { metadata: { name: `o${n}`, resourceVersion: String(++n) } };
      controller.enqueue(encoder.encode(JSON.stringify({ type: "ADDED", object }) + "\n"));
    },
  });
  const names = [];
  for await (const e of readWatchEvents<{ metadata: { name: string } }>(ticking, context(60))) {
    names.push(e.object.metadata.name);
  }
  assert.deepEqual(names, ["o0", "o1", "o2", "o3", "o4"]);
});
