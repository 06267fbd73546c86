/**
 * Callout figures, measured here rather than asserted in tests: the account signing key's
 * time per signature (native Ed25519), and the connect latency of a NATS client through the
 * auth callout on a real nats-server, unencrypted and with xkey (client-side median, and the
 * callout's own handling median from its log); then the callout under load (see
 * {@link CalloutLoad}): authorizations per second and p50/p99 connect latency with the JWKS
 * cached, for one `fleet callout run` and for two sharing the queue group, and the reconnect
 * storm of `--agents` agents after a nats-server restart. Authorizations per second are the
 * capacity (`--concurrency` connects in flight, so their latency is mostly queueing), measured
 * twice: with the product's client (as agents connect) and with bare-protocol clients, whose
 * own CPU leaves the shared 2 cores to nats-server and the callouts; the
 * latency is also measured at a steady `--rate` per second, below that capacity. A callout
 * checks a token's signature the first time it sees it and keeps it until it expires (agents
 * reconnect with the same token): the first bare-protocol burst to one callout checks every
 * signature ("tokens new"), later runs reuse them, except on the second callout's first run.
 * Prints one line of figures, last.
 *
 * `deno task bench:callout [--connects 20] [--signatures 1000] [--agents 1000] [--concurrency 50]
 * [--rate 500]`
 */
import { parseArgs } from "node:util";
import { createAccount } from "@nats-io/nkeys";
import { printLine } from "../adapters/output.ts";
import { AccountSigningKey } from "../callout/keys.ts";
import { startCalloutFixture } from "../testing/callout.ts";
import {
  type Agent,
  burst,
  type BurstFigures,
  CalloutLoad,
  paced,
  rawBurst,
  storm,
} from "./_callout_load.ts";
import { fmt, median, say } from "./_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    connects: { type: "string", default: "20" },
    signatures: { type: "string", default: "1000" },
    agents: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "50" },
    rate: { type: "string", default: "500" },
  },
});
const connects = Number(values.connects);
const signatures = Number(values.signatures);
const agentCount = Number(values.agents);
const concurrency = Number(values.concurrency);
const rate = Number(values.rate);

/** Mean ms per signature of a 600-byte message (about a user JWT's claims). */
function signingMs(): number {
  const key = AccountSigningKey.fromSeed(new TextDecoder().decode(createAccount().getSeed()));
  const data = new TextEncoder().encode("x".repeat(600));
  const started = performance.now();
  for (let i = 0; i < signatures; i++) key.sign(data);
  return (performance.now() - started) / signatures;
}

/** Client connect and callout handling medians, in ms. */
async function connectMs(encrypted: boolean): Promise<{ connect: number; handling: number }> {
  await using t = await startCalloutFixture(encrypted);
  const token = await t.mint("dev-a", ["fleet-device"]);
  const times: number[] = [];
  for (let i = 0; i < connects; i++) {
    const started = performance.now();
    const nc = await t.connectAs(token, "dev-a");
    times.push(performance.now() - started);
    await nc.close();
  }
  const handled = t.lines
    .filter((l) => l.includes("Allowed device"))
    .map((l) => Number(/ ms=([\d.]+)/.exec(l)?.[1]));
  return { connect: median(times), handling: median(handled) };
}

/** How a run connects: `concurrency` at a time, at a steady `rate`, or bare-protocol clients. */
type Pace = { concurrency: number } | { rate: number } | { bare: number };

/** Connects every agent once as `pace` says, then all disconnect. */
async function run(pace: Pace, agents: Agent[]): Promise<BurstFigures> {
  if ("bare" in pace) return await rawBurst(load.ns.url, agents, pace.bare);
  const { figures, conns } = "rate" in pace
    ? await paced(load.ns.url, agents, pace.rate)
    : await burst(load.ns.url, agents, pace.concurrency);
  await Promise.all(conns.map((nc) => nc.close()));
  return figures;
}

/** {@link run}, and where the CPU went. */
async function loaded(agents: Agent[], label: string, pace: Pace = { concurrency }) {
  const before = load.cpuTicks();
  const figures = await run(pace, agents);
  const after = load.cpuTicks();
  say(
    `${label}: ${agents.length} connects, ${
      "rate" in pace
        ? `${pace.rate}/s`
        : `${"bare" in pace ? pace.bare : pace.concurrency} at a time`
    }, CPU s: callouts ${(after.callouts - before.callouts) / 100}, ` +
      `agents ${(after.agents - before.agents) / 100}, ` +
      `nats-server ${(after.server - before.server) / 100}`,
  );
  return figures;
}

const burstLine = (b: BurstFigures) =>
  `${fmt(b.perSecond)}/s p50=${fmt(b.p50, 1)}ms p99=${fmt(b.p99, 1)}ms` +
  (b.failed > 0 ? ` failed=${b.failed}` : "");

const perSignature = signingMs();
const plain = await connectMs(false);
const xkey = await connectMs(true);
await using load = await CalloutLoad.start();
say(`minting ${agentCount} access tokens`);
const agents = await load.agents(agentCount);
await load.addCallout();
// The first connect fetches the provider's keys; the figures are with them cached.
await loaded(agents.slice(0, 1), "warm-up");
const oneNew = await loaded(agents, "one callout, bare-protocol clients, tokens new", {
  bare: concurrency,
});
const one = await loaded(agents, "one callout");
const oneRaw = await loaded(agents, "one callout, bare-protocol clients", { bare: concurrency });
const oneSteady = await loaded(agents, "one callout, steady", { rate });
await load.addCallout();
const two = await loaded(agents, "two callouts");
const twoRaw = await loaded(agents, "two callouts, bare-protocol clients", { bare: concurrency });
const twoSteady = await loaded(agents, "two callouts, steady", { rate });
const handling = median(load.decisions().handlingMs);
const stormed = await storm(load, agents);
printLine(
  `callout bench: sign ${perSignature.toFixed(3)}ms per signature over ${signatures}; ` +
    `connect median unencrypted=${plain.connect.toFixed(1)}ms (callout ${
      plain.handling.toFixed(1)
    }ms), with xkey=${xkey.connect.toFixed(1)}ms (callout ${
      xkey.handling.toFixed(1)
    }ms) over ${connects} connects; ` +
    `authorizations at capacity (${concurrency} in flight) one callout ${burstLine(one)}, ` +
    `two callouts ${burstLine(two)}; with bare-protocol clients one callout ${
      burstLine(oneRaw)
    } (tokens new ${burstLine(oneNew)}), two callouts ${
      burstLine(twoRaw)
    }; at a steady ${rate}/s one callout ${burstLine(oneSteady)}, two callouts ${
      burstLine(twoSteady)
    } ` +
    `(callout handling median ${fmt(handling, 1)}ms); ` +
    `storm ${stormed.back}/${agentCount} back in ${fmt(stormed.backMs / 1000, 1)}s, ` +
    `auth errors ${stormed.authErrors} (refused ${stormed.refused})`,
);
