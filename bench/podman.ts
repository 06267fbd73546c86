/**
 * Podman adapter figures, measured here rather than asserted in tests: how long
 * `stopContainer()` takes for a container that exits on SIGTERM (the test image's trap) and
 * for one that ignores it (about the 1 s timeout it is given), and how long
 * `removeContainer()` takes for a running container that ignores SIGTERM (no stop timeout).
 * Prints one line of figures, last.
 *
 * `deno task bench:podman [--rounds 3]`
 */
import { parseArgs } from "node:util";
import { printLine } from "../adapters/output.ts";
import { type ContainerCreateSpec, PodmanClient } from "../adapters/podman/mod.ts";
import { startPodmanService } from "../sandbox/podman_service.ts";
import { ensureTestImage } from "../sandbox/local_image.ts";
import { testContainerSpec, uniqueContainerName } from "../testing/containers.ts";
import { median } from "./_figures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "3" } },
});
const rounds = Number(values.rounds);

await using svc = await startPodmanService();
using client = new PodmanClient({ socketPath: svc.socketPath });
const image = await ensureTestImage(client, "bench");

/** A container that exits on SIGTERM (the test image's trap), or one that ignores it. */
function spec(name: string, ignoresTerm: boolean): ContainerCreateSpec {
  return testContainerSpec(
    name,
    image,
    ignoresTerm
      ? { command: ["/bin/sh", "-c"], args: ["trap '' TERM; while true; do sleep 1; done"] }
      : {},
  );
}

/** Median ms of `step` on a freshly started container, over the rounds. */
async function timed(
  ignoresTerm: boolean,
  step: (id: string) => Promise<void>,
): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const name = uniqueContainerName("fleet-bench");
    const id = await client.createContainer(spec(name, ignoresTerm));
    try {
      await client.startContainer(id);
      const started = performance.now();
      await step(id);
      times.push(performance.now() - started);
    } finally {
      await client.removeContainer(id);
    }
  }
  return median(times);
}

const graceful = await timed(false, (id) => client.stopContainer(id, 10));
const killed = await timed(true, (id) => client.stopContainer(id, 1));
const removed = await timed(true, (id) => client.removeContainer(id));
printLine(
  `podman bench: stop on SIGTERM ${graceful.toFixed(0)}ms (timeout 10 s); stop ignoring ` +
    `SIGTERM ${killed.toFixed(0)}ms (timeout 1 s); remove running ${
      removed.toFixed(0)
    }ms; medians of ${rounds}`,
);
