/** The last desired state seen, on local disk, so a device that boots offline still converges. */
import * as z from "zod";
import { join } from "node:path";
import type { Clock } from "../core/clock.ts";

const CacheFile = z.object({
  deviceId: z.string(),
  savedAt: z.string(),
  /** refKey (`<namespace>.<deployment>`) → the desired-state value as received. */
  values: z.record(z.string(), z.string()),
});

export class DesiredCache {
  readonly #path: string;
  readonly #deviceId: string;
  readonly #clock: Clock;

  /** @param clock stamps `savedAt`, for a person reading the file */
  constructor(stateDir: string, deviceId: string, clock: Clock) {
    this.#path = join(stateDir, "desired-state.json");
    this.#deviceId = deviceId;
    this.#clock = clock;
  }

  get path(): string {
    return this.#path;
  }

  /** The cached values; empty when there is no cache, or it belongs to another device. */
  async load(): Promise<{ values: Map<string, string>; problem?: string }> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.#path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { values: new Map() };
      throw error;
    }
    let parsed: z.infer<typeof CacheFile>;
    try {
      parsed = CacheFile.parse(JSON.parse(text));
    } catch {
      return { values: new Map(), problem: `the cache file ${this.#path} is damaged; ignoring it` };
    }
    if (parsed.deviceId !== this.#deviceId) {
      return {
        values: new Map(),
        problem: `the cache file ${this.#path} belongs to device "${parsed.deviceId}"; ignoring it`,
      };
    }
    return { values: new Map(Object.entries(parsed.values)) };
  }

  /** Writes atomically (temp file + rename), so a power cut leaves the old or the new file. */
  async save(values: ReadonlyMap<string, string>): Promise<void> {
    await Deno.mkdir(join(this.#path, ".."), { recursive: true });
    const body = JSON.stringify({
      deviceId: this.#deviceId,
      savedAt: new Date(this.#clock.now()).toISOString(),
      values: Object.fromEntries(values),
    });
    const tmp = `${this.#path}.tmp`;
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true, mode: 0o600 });
    try {
      const data = new TextEncoder().encode(body);
      for (let offset = 0; offset < data.length;) offset += await file.write(data.subarray(offset));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, this.#path);
  }
}
