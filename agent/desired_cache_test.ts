import assert from "node:assert/strict";
import { join } from "node:path";
import { FakeClock } from "../testing/fake_clock.ts";
import { DesiredCache } from "./desired_cache.ts";

/** Runs `fn` with a fresh temporary state dir, removed afterwards. */
async function withStateDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "fleet-cache-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const clock = new FakeClock(Date.parse("2026-03-01T08:00:00Z"));

const VALUES = new Map([
  ["default.web", `{"namespace":"default","name":"web","generation":2}`],
  ["team-a.api", `{"namespace":"team-a","name":"api","generation":1}`],
]);

Deno.test("DesiredCache.save() then load() returns the same values", async () => {
  await withStateDir(async (dir) => {
    const cache = new DesiredCache(dir, "pi-01", clock);
    assert.equal(cache.path, join(dir, "desired-state.json"));
    await cache.save(VALUES);
    const loaded = await new DesiredCache(dir, "pi-01", clock).load();
    assert.deepEqual(loaded, { values: VALUES });

    // Saving again replaces the content, including with nothing.
    await cache.save(new Map());
    assert.deepEqual(await cache.load(), { values: new Map() });
  });
});

Deno.test("DesiredCache.save() writes atomically and privately, creating the state dir", async () => {
  await withStateDir(async (dir) => {
    const stateDir = join(dir, "var", "lib", "fleet-agent");
    const cache = new DesiredCache(stateDir, "pi-01", clock);
    await cache.save(VALUES);
    await cache.save(VALUES);
    const names = [];
    for await (const entry of Deno.readDir(stateDir)) names.push(entry.name);
    assert.deepEqual(names, ["desired-state.json"], "no temporary file is left behind");
    assert.equal((await Deno.stat(cache.path)).mode! & 0o777, 0o600);
    const body = JSON.parse(await Deno.readTextFile(cache.path));
    assert.equal(body.deviceId, "pi-01");
    assert.equal(body.savedAt, "2026-03-01T08:00:00.000Z", "stamped by the injected clock");
  });
});

Deno.test("DesiredCache.load() without a file returns nothing and no problem", async () => {
  await withStateDir(async (dir) => {
    assert.deepEqual(await new DesiredCache(join(dir, "missing"), "pi-01", clock).load(), {
      values: new Map(),
    });
  });
});

Deno.test("DesiredCache.load() ignores the cache of another device, saying so", async () => {
  await withStateDir(async (dir) => {
    await new DesiredCache(dir, "pi-02", clock).save(VALUES);
    const cache = new DesiredCache(dir, "pi-01", clock);
    const loaded = await cache.load();
    assert.equal(loaded.values.size, 0);
    assert.ok(loaded.problem, "a problem is reported");
    assert.ok(loaded.problem.includes(cache.path), loaded.problem);
    assert.ok(loaded.problem.includes(`"pi-02"`), loaded.problem);
    assert.match(loaded.problem, /ignoring it/);
  });
});

Deno.test("DesiredCache.load() ignores a damaged file, saying so", async () => {
  await withStateDir(async (dir) => {
    const cache = new DesiredCache(dir, "pi-01", clock);
    for (
      const damaged of [
        `{"deviceId":"pi-01","savedAt":"2025-01-01T00:00:00Z","values":{"default.web":`,
        `{"deviceId":"pi-01","values":{"default.web":{"not":"a string"}}}`,
        "",
      ]
    ) {
      await Deno.writeTextFile(cache.path, damaged);
      const loaded = await cache.load();
      assert.equal(loaded.values.size, 0);
      assert.ok(loaded.problem, `a problem for ${JSON.stringify(damaged)}`);
      assert.ok(loaded.problem.includes(cache.path), loaded.problem);
      assert.match(loaded.problem, /damaged; ignoring it/);
    }
  });
});
