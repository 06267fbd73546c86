/**
 * Callout figures, measured here rather than asserted in tests: the account signing key's
 * time per signature (native Ed25519), and the connect latency of a NATS client through the
 * auth callout on a real nats-server, unencrypted and with xkey (client-side median, and the
 * callout's own handling median from its log). Prints one line of figures, last.
 *
 * `deno task bench:callout [--connects 20] [--signatures 1000]`
 */
import { parseArgs } from "node:util";
import { createAccount } from "@nats-io/nkeys";
import { printLine } from "../adapters/output.ts";
import { AccountSigningKey } from "../callout/keys.ts";
import { startCalloutFixture } from "../testing/callout.ts";
import { median } from "./_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    connects: { type: "string", default: "20" },
    signatures: { type: "string", default: "1000" },
  },
});
const connects = Number(values.connects);
const signatures = Number(values.signatures);

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

const perSignature = signingMs();
const plain = await connectMs(false);
const xkey = await connectMs(true);
printLine(
  `callout bench: sign ${perSignature.toFixed(3)}ms per signature over ${signatures}; ` +
    `connect median unencrypted=${plain.connect.toFixed(1)}ms (callout ${
      plain.handling.toFixed(1)
    }ms), with xkey=${xkey.connect.toFixed(1)}ms (callout ${
      xkey.handling.toFixed(1)
    }ms) over ${connects} connects`,
);
