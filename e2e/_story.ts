/**
 * End-to-end stories: a `Deno.test` with a deadline and a log. A story that fails, or does
 * not finish in time, prints the last lines its fleet logged; one stuck on a server that
 * never answers fails at its deadline instead of holding the whole run (and CI) forever.
 */
import { createLogger, type Logger, type LogLevel, LogLevels } from "../adapters/logger.ts";
import { DeadlineError, withDeadline } from "../adapters/timers.ts";

/** Longer than any story takes on a loaded 2-core machine, far shorter than CI's limit. */
const DEFAULT_DEADLINE_MS = 8 * 60_000;
/** How long each resource of a story past its deadline gets to stop. */
const DISPOSE_MS = 30_000;
const KEPT_LINES = 400;

export interface StoryOptions extends Omit<Deno.TestDefinition, "name" | "fn"> {
  /** @default 8 minutes */
  deadlineMs?: number;
}

interface Running {
  lines: string[];
  dropped: number;
  resources: Set<AsyncDisposable>;
}

/** The story in progress: test files run their tests one at a time. */
let running: Running | undefined;

/**
 * A logger for the fleet of the running story: its lines are kept for the failure report and
 * also printed as they come when FLEET_TEST_LOG is set (to a level, or anything for debug).
 */
export function testLogger(): Logger {
  const level = Deno.env.get("FLEET_TEST_LOG");
  const live = level !== undefined;
  return createLogger({
    level: live && LogLevels.includes(level as LogLevel)
      ? level as LogLevel
      : live
      ? "debug"
      : "info",
    write: (line) => {
      if (live) Deno.stderr.writeSync(encoder.encode(line + "\n"));
      const story = running;
      if (!story) return;
      story.lines.push(line);
      if (story.lines.length > KEPT_LINES) {
        story.lines.shift();
        story.dropped++;
      }
    },
  });
}

/**
 * Stops `resource` if the running story passes its deadline (its own `await using` never
 * runs then), so the servers it started do not outlive it. Returns `resource`.
 */
export function stopOnDeadline<T extends AsyncDisposable>(resource: T): T {
  running?.resources.add(resource);
  return resource;
}

/** Registers a story: `Deno.test` with resource sanitizers off, a deadline and its log. */
export function story(name: string, options: StoryOptions, fn: () => Promise<void>): void;
export function story(name: string, fn: () => Promise<void>): void;
export function story(
  name: string,
  optionsOrFn: StoryOptions | (() => Promise<void>),
  maybeFn?: () => Promise<void>,
): void {
  const { deadlineMs = DEFAULT_DEADLINE_MS, ...definition } = typeof optionsOrFn === "function"
    ? {}
    : optionsOrFn;
  const fn = typeof optionsOrFn === "function" ? optionsOrFn : maybeFn!;
  Deno.test({
    name,
    // Stories start servers and watches that outlive single steps by design.
    sanitizeOps: false,
    sanitizeResources: false,
    ...definition,
    fn: () => tell(name, deadlineMs, fn),
  });
}

async function tell(name: string, deadlineMs: number, fn: () => Promise<void>): Promise<void> {
  const story: Running = { lines: [], dropped: 0, resources: new Set() };
  running = story;
  const body = fn();
  try {
    await withDeadline(body, deadlineMs, `"${name}" did not finish within ${deadlineMs / 1000} s`);
  } catch (error) {
    printLog(name, story);
    if (error instanceof DeadlineError) {
      // The story has failed at its deadline; whatever its stuck steps throw once their
      // servers are gone adds nothing to that.
      body.catch(() => {});
      await stopAll(story.resources);
    }
    throw error;
  } finally {
    if (running === story) running = undefined;
  }
}

async function stopAll(resources: Set<AsyncDisposable>): Promise<void> {
  for (const resource of resources) {
    try {
      await withDeadline(
        Promise.resolve(resource[Symbol.asyncDispose]()),
        DISPOSE_MS,
        `did not stop within ${DISPOSE_MS / 1000} s`,
      );
    } catch (error) {
      Deno.stderr.writeSync(encoder.encode(`Stopping after the deadline: ${error}\n`));
    }
  }
}

const encoder = new TextEncoder();

function printLog(name: string, story: Running): void {
  const header = story.dropped > 0
    ? `--- last ${story.lines.length} log lines of "${name}" (${story.dropped} earlier ones dropped)`
    : `--- log of "${name}" (${story.lines.length} lines)`;
  Deno.stderr.writeSync(
    encoder.encode([header, ...story.lines, `--- end of the log of "${name}"`, ""].join("\n")),
  );
}
