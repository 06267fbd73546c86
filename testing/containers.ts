/** Containers as the Podman adapter's tests and `bench:podman` create them. */
import type { ContainerCreateSpec } from "../adapters/podman/mod.ts";

/** A container name no other test run uses: `prefix` and a random suffix. */
export function uniqueContainerName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A container of `image` with no labels, environment, ports or volumes, never restarted. */
export function testContainerSpec(
  name: string,
  image: string,
  extra: Partial<ContainerCreateSpec> = {},
): ContainerCreateSpec {
  return {
    name,
    image,
    labels: {},
    env: {},
    ports: [],
    volumes: [],
    restartPolicy: "no",
    ...extra,
  };
}
