import assert from "node:assert/strict";
import { createLogger } from "../adapters/logger.ts";
import { FakeClock } from "../testing/fake_clock.ts";
import { MemoryLease, type MemoryLeaseStore } from "../testing/memory_lease_store.ts";
import type { LeaseRecord } from "./lease_store.ts";
import {
  type ElectionOutcome,
  electionTimings,
  LeaderElectionConfigError,
  runAsLeader,
} from "./leader_election.ts";

const LEASE_SECONDS = 15;
const RETRY_MS = 2000;
const RENEW_DEADLINE_MS = 10_000;

/** One operator replica in a test: its store, whether it leads now, and how it ended. */
interface Replica {
  store: MemoryLeaseStore;
  stop: AbortController;
  /** True while its `lead` runs with a live signal. */
  readonly leading: boolean;
  /** How many times `lead` started. */
  readonly terms: number;
  outcome: ElectionOutcome | Error | undefined;
  done: Promise<ElectionOutcome | Error>;
}

function startReplica(
  lease: MemoryLease,
  identity: string,
  clock: FakeClock,
  lines: string[] = [],
  lead?: (signal: AbortSignal) => Promise<void>,
): Replica {
  const store = lease.store(identity);
  const stop = new AbortController();
  let signal: AbortSignal | undefined;
  let terms = 0;
  const replica: Replica = {
    store,
    stop,
    get leading() {
      return signal !== undefined && !signal.aborted;
    },
    get terms() {
      return terms;
    },
    outcome: undefined,
    done: Promise.resolve("stopped"),
  };
  replica.done = runAsLeader(
    {
      store,
      identity,
      clock,
      log: createLogger({ level: "debug", write: (line) => lines.push(`${identity}: ${line}`) }),
      leaseDurationSeconds: LEASE_SECONDS,
      retryIntervalMs: RETRY_MS,
      renewDeadlineMs: RENEW_DEADLINE_MS,
    },
    stop.signal,
    (leading) => {
      signal = leading;
      terms++;
      return lead ? lead(leading) : untilAborted(leading);
    },
  ).catch((error: Error) => error).then((outcome) => replica.outcome = outcome);
  return replica;
}

function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve()));
}

/** A lease held by `holder`, with times that must not matter to anyone's decision. */
function heldBy(holder: string, time = "2026-01-01T00:00:00.000Z"): LeaseRecord {
  return {
    holderIdentity: holder,
    leaseDurationSeconds: LEASE_SECONDS,
    acquireTime: time,
    renewTime: time,
    leaseTransitions: 4,
  };
}

Deno.test("runAsLeader() acquires a lease nobody holds at once and leads", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const a = startReplica(lease, "op-a", clock);
  await clock.advance(0);
  assert.equal(a.leading, true);
  assert.deepEqual(lease.current?.record, {
    holderIdentity: "op-a",
    leaseDurationSeconds: LEASE_SECONDS,
    acquireTime: "2026-01-01T00:00:00.000Z",
    renewTime: "2026-01-01T00:00:00.000Z",
    leaseTransitions: 0,
  });
  a.stop.abort();
  assert.equal(await a.done, "stopped");
});

Deno.test("runAsLeader() renews every retry interval, keeping its acquire time", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const a = startReplica(lease, "op-a", clock);
  await clock.advance(0);
  const first = lease.current!;
  await clock.advance(RETRY_MS);
  const second = lease.current!;
  assert.notEqual(second.revision, first.revision);
  assert.equal(second.record.renewTime, "2026-01-01T00:00:02.000Z");
  assert.equal(second.record.acquireTime, first.record.acquireTime);
  assert.equal(second.record.leaseTransitions, 0);
  await clock.advance(3 * RETRY_MS);
  assert.deepEqual(lease.writes, ["op-a op-a", "op-a op-a", "op-a op-a", "op-a op-a", "op-a op-a"]);
  a.stop.abort();
  await a.done;
});

Deno.test("runAsLeader() as a standby waits a whole lease duration after the last change, then takes over", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  lease.set(heldBy("op-dead"));
  const lines: string[] = [];
  const b = startReplica(lease, "op-b", clock, lines);
  await clock.advance(LEASE_SECONDS * 1000 - 1);
  assert.equal(b.leading, false, "still within the lease duration");
  assert.equal(lease.current?.record.holderIdentity, "op-dead");
  // The next retry after the duration has passed.
  await clock.advance(RETRY_MS);
  assert.equal(b.leading, true);
  assert.equal(lease.current?.record.holderIdentity, "op-b");
  assert.equal(lease.current?.record.leaseTransitions, 5);
  assert.equal(lease.current?.record.acquireTime, "2026-01-01T00:00:16.000Z");
  assert.ok(lines.some((l) => l.includes("Standing by: op-dead leads")), lines.join("\n"));
  assert.ok(lines.some((l) => l.includes("Took over the lease from op-dead")), lines.join("\n"));
  b.stop.abort();
  await b.done;
});

Deno.test("runAsLeader() as a standby starts its wait again whenever the holder renews", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  lease.set(heldBy("op-a"));
  const b = startReplica(lease, "op-b", clock);
  await clock.advance(11_000);
  lease.set(heldBy("op-a")); // a renewal: a new revision (same content), seen at b's 12 s retry
  await clock.advance(LEASE_SECONDS * 1000);
  assert.equal(b.leading, false, "26 s after the start, 14 s after b saw the renewal");
  await clock.advance(RETRY_MS);
  assert.equal(b.leading, true, "16 s after b saw the renewal");
  b.stop.abort();
  await b.done;
});

Deno.test("runAsLeader() never compares the times written in the lease: a skewed holder's clock changes nothing", async () => {
  for (const time of ["2000-01-01T00:00:00.000Z", "2100-01-01T00:00:00.000Z"]) {
    const clock = new FakeClock();
    const lease = new MemoryLease();
    lease.set(heldBy("op-skewed", time));
    const b = startReplica(lease, "op-b", clock);
    await clock.advance(LEASE_SECONDS * 1000 - 1);
    assert.equal(b.leading, false, `renewTime ${time}: waits the whole duration`);
    await clock.advance(RETRY_MS);
    assert.equal(b.leading, true, `renewTime ${time}: takes over after it`);
    b.stop.abort();
    await b.done;
  }
});

Deno.test("runAsLeader() steps down ('lost') when it cannot renew within the renew deadline", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const lines: string[] = [];
  const a = startReplica(lease, "op-a", clock, lines);
  await clock.advance(0);
  a.store.failing = true;
  await clock.advance(RENEW_DEADLINE_MS - 1);
  assert.equal(a.leading, true, "within the renew deadline");
  await clock.advance(1);
  assert.equal(a.leading, false, "stopped leading at the deadline");
  assert.equal(await a.done, "lost");
  assert.deepEqual(lease.writes, ["op-a op-a"], "no release: the lease may not be ours any more");
  assert.ok(lines.some((l) => l.includes("could not be renewed within 10 s")), lines.join("\n"));
  assert.equal(
    lines.filter((l) => l.includes("WARN") && l.includes("Cannot reach")).length,
    1,
    "the same failure is a warning once, then debug:\n" + lines.join("\n"),
  );
});

Deno.test("runAsLeader() steps down on time even when the store stops answering mid-renewal", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const a = startReplica(lease, "op-a", clock);
  await clock.advance(0);
  a.store.hanging = true;
  await clock.advance(RENEW_DEADLINE_MS - 1);
  assert.equal(a.leading, true);
  await clock.advance(1);
  assert.equal(a.leading, false);
  assert.equal(await a.done, "lost");
});

Deno.test("runAsLeader() steps down at once when it finds another replica holding the lease", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const a = startReplica(lease, "op-a", clock);
  await clock.advance(0);
  lease.set(heldBy("op-b"));
  await clock.advance(RETRY_MS);
  assert.equal(a.leading, false);
  assert.equal(await a.done, "lost");
  assert.equal(lease.current?.record.holderIdentity, "op-b", "left alone");
});

Deno.test("runAsLeader(): a leader cut off from the store stops before its standby takes over", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const a = startReplica(lease, "op-a", clock);
  await clock.advance(0);
  const b = startReplica(lease, "op-b", clock);
  await clock.advance(RETRY_MS * 3);
  assert.equal(a.leading, true);
  assert.equal(b.leading, false);

  a.store.hanging = true; // a's renewals no longer reach the store
  let aStoppedAt: number | undefined;
  let bLedAt: number | undefined;
  for (let t = 0; t < 30_000; t += 100) {
    await clock.advance(100);
    assert.ok(!(a.leading && b.leading), `two leaders at ${clock.monotonic()} ms`);
    if (!a.leading) aStoppedAt ??= clock.monotonic();
    if (b.leading) bLedAt ??= clock.monotonic();
  }
  assert.equal(a.outcome, "lost");
  assert.ok(aStoppedAt !== undefined && bLedAt !== undefined);
  // a's last renewal was at 6 s: it steps down by 16 s; b saw it at 6 s and waits until 21 s.
  assert.equal(aStoppedAt, 16_000);
  assert.ok(bLedAt >= 6_000 + LEASE_SECONDS * 1000, `b took over at ${bLedAt} ms`);
  assert.equal(lease.current?.record.holderIdentity, "op-b");
  assert.equal(lease.current?.record.leaseTransitions, 1);
  b.stop.abort();
  await b.done;
});

Deno.test("runAsLeader() releases the lease on stop, so a standby takes over at its next retry", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const lines: string[] = [];
  const a = startReplica(lease, "op-a", clock, lines);
  await clock.advance(0);
  const b = startReplica(lease, "op-b", clock, lines);
  await clock.advance(RETRY_MS * 2);
  assert.equal(b.leading, false);

  a.stop.abort();
  assert.equal(await a.done, "stopped");
  assert.equal(a.leading, false);
  assert.equal(lease.current?.record.holderIdentity, "", "released");
  await clock.advance(RETRY_MS);
  assert.equal(b.leading, true, "no need to wait for a lease duration");
  assert.ok(lines.some((l) => l.includes("op-a: ") && l.includes("Released the lease")));
  b.stop.abort();
  await b.done;
});

Deno.test("runAsLeader() releases the lease and rethrows when lead() fails", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  const a = startReplica(lease, "op-a", clock, [], async () => {
    await Promise.resolve();
    throw new Error("source broke");
  });
  await clock.advance(0);
  const outcome = await a.done;
  assert.ok(outcome instanceof Error && outcome.message === "source broke", String(outcome));
  assert.equal(lease.current?.record.holderIdentity, "");
});

Deno.test("runAsLeader(): of two standbys racing for an expired lease, exactly one wins", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  lease.set(heldBy("op-dead"));
  const b = startReplica(lease, "op-b", clock);
  const c = startReplica(lease, "op-c", clock);
  await clock.advance(LEASE_SECONDS * 1000 + RETRY_MS);
  assert.equal(Number(b.leading) + Number(c.leading), 1);
  await clock.advance(RETRY_MS * 5);
  assert.equal(Number(b.leading) + Number(c.leading), 1);
  assert.equal(b.terms + c.terms, 1);
  b.stop.abort();
  c.stop.abort();
  await Promise.all([b.done, c.done]);
});

Deno.test("runAsLeader() stopped while standing by returns 'stopped' and writes nothing", async () => {
  const clock = new FakeClock();
  const lease = new MemoryLease();
  lease.set(heldBy("op-a"));
  const b = startReplica(lease, "op-b", clock);
  await clock.advance(RETRY_MS);
  b.stop.abort();
  assert.equal(await b.done, "stopped");
  assert.equal(b.terms, 0);
  assert.deepEqual(lease.writes, []);
});

Deno.test("runAsLeader() rejects an empty identity and a renew deadline not shorter than the lease", async () => {
  const log = createLogger({ write: () => {} });
  const store = new MemoryLease().store("x");
  const lead = () => Promise.resolve();
  await assert.rejects(
    runAsLeader({ store, identity: "", log }, new AbortController().signal, lead),
    LeaderElectionConfigError,
  );
  await assert.rejects(
    runAsLeader(
      { store, identity: "op-a", log, leaseDurationSeconds: 10, renewDeadlineMs: 10_000 },
      new AbortController().signal,
      lead,
    ),
    /renew deadline shorter than the lease duration .*: lease 10 s, renew deadline 10000 ms/,
  );
});

Deno.test("electionTimings() keeps client-go's proportions, retrying at least every 250 ms", () => {
  assert.deepEqual(electionTimings(15), {
    leaseDurationSeconds: 15,
    retryIntervalMs: 2000,
    renewDeadlineMs: 10_000,
  });
  assert.equal(electionTimings(1).retryIntervalMs, 250);
  assert.ok(electionTimings(1).renewDeadlineMs < 1000);
});
