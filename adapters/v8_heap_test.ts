import * as assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const MODULE = fileURLToPath(new URL("./v8_heap.ts", import.meta.url));

/** Runs releaseSpareHeap() in a Deno process of its own, after a burst of garbage. */
async function releaseIn(v8Flags: string[]): Promise<unknown> {
  const script = `
    const { releaseSpareHeap } = await import(${JSON.stringify(MODULE)});
    let junk = Array.from({ length: 200_000 }, (_, i) => ({ i, text: "x".repeat(i % 64) }));
    junk = [];
    console.log(JSON.stringify(releaseSpareHeap() ?? null));`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", ...v8Flags.map((flag) => `--v8-flags=${flag}`), script],
    stderr: "inherit",
  }).output();
  assert.ok(out.success, "the script ran");
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("releaseSpareHeap compacts V8's heap when --expose-gc is set and gives back pages a burst left", async () => {
  const released = await releaseIn(["--expose-gc"]) as { heapBefore: number; heapAfter: number };
  assert.ok(released.heapBefore > 0, JSON.stringify(released));
  assert.ok(
    released.heapAfter < released.heapBefore,
    `the heap shrank: ${JSON.stringify(released)}`,
  );
});

Deno.test("releaseSpareHeap does nothing without --expose-gc", async () => {
  assert.equal(await releaseIn([]), null);
});
