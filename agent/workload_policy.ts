/**
 * Enforces the device policy on the desired state before the reconciler sees it: a
 * deployment the policy refuses becomes a failed entry naming the rules it broke, which the
 * planner reports `Failed` while it leaves the deployment's current containers as they are
 * (a refused update takes nothing down; a refused new deployment creates nothing). The
 * host paths are resolved on the device here, so the pure decision judges where a symlink
 * really leads.
 */
import { dirname } from "node:path";
import {
  type ContainerGrants,
  ContainerLabels,
  decidePolicy,
  type DesiredEntry,
  type DevicePolicy,
  grantViolations,
  normalizeHostPath,
  type ObservedContainer,
  type ProtectedPath,
} from "../core/mod.ts";
import type { AgentConfig } from "./config.ts";

/** Where the agent user lives, for the paths no workload may mount. */
export interface AgentUser {
  home?: string | undefined;
  /** `$XDG_RUNTIME_DIR`. */
  runtimeDir?: string | undefined;
}

/** The user this agent runs as, from its environment (no uid: the agent is not granted it). */
export function currentAgentUser(): AgentUser {
  return { home: Deno.env.get("HOME"), runtimeDir: Deno.env.get("XDG_RUNTIME_DIR") };
}

/** `/run/user/<uid>` of a rootless podman socket under it. */
function runtimeDirOf(socket: string): string | undefined {
  return /^\/run\/user\/\d+(?=\/)/.exec(socket)?.[0];
}

/**
 * The agent's own paths: its config directory, key and password files, state directory,
 * podman socket and its user's home and runtime directories.
 */
export function protectedPaths(
  config: AgentConfig,
  configPath: string | undefined,
  user: AgentUser,
): ProtectedPath[] {
  const paths: ProtectedPath[] = [];
  const add = (path: string | undefined, what: string) => {
    if (path === undefined) return;
    const normal = normalizeHostPath(path);
    if ("path" in normal) paths.push({ path: normal.path, what });
  };
  add(configPath === undefined ? undefined : dirname(configPath), "the agent's config directory");
  const credentials = config.nats.credentials;
  if (credentials.type === "oidc") add(credentials.key_file, "the agent's key file");
  if (credentials.type === "userpass") add(credentials.password_file, "the agent's password file");
  add(config.state_dir, "the agent's state directory");
  add(config.podman.socket, "the podman socket");
  add(user.home, "the agent user's home directory");
  // systemd sets no XDG_RUNTIME_DIR for a service; a rootless socket says where it is.
  add(user.runtimeDir ?? runtimeDirOf(config.podman.socket), "the agent user's runtime directory");
  return paths;
}

/**
 * Resolves a path's symlinks on this host; for a path that does not exist yet, those of its
 * nearest existing parent (podman would create the rest there).
 */
export async function realPath(path: string): Promise<string> {
  const missing: string[] = [];
  let at = path;
  for (;;) {
    try {
      const real = await Deno.realPath(at);
      return [real === "/" ? "" : real, ...missing].join("/") || "/";
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound) || at === "/") throw error;
      missing.unshift(at.slice(at.lastIndexOf("/") + 1));
      at = dirname(at);
    }
  }
}

export interface WorkloadPolicyOptions {
  policy: DevicePolicy;
  protectedPaths: readonly ProtectedPath[];
  /** What a running container was given of the host (the runtime's inspect). */
  grants(containerId: string): Promise<ContainerGrants | undefined>;
}

export class WorkloadPolicy {
  readonly #policy: DevicePolicy;
  readonly #protected: readonly ProtectedPath[];
  readonly #grants: (containerId: string) => Promise<ContainerGrants | undefined>;
  #resolvedProtected: Promise<ProtectedPath[]> | undefined;

  constructor(options: WorkloadPolicyOptions) {
    this.#policy = options.policy;
    this.#protected = options.protectedPaths;
    this.#grants = options.grants;
  }

  /**
   * The desired entries as the device will run them: each runnable one either with its
   * limits set and host paths resolved, or failed with the rules it broke.
   */
  async enforce(entries: ReadonlyMap<string, DesiredEntry>): Promise<Map<string, DesiredEntry>> {
    const protectedPaths = await this.#protectedPaths();
    const enforced = new Map<string, DesiredEntry>();
    for (const [key, entry] of entries) {
      enforced.set(key, "error" in entry ? entry : await this.#enforce(entry, protectedPaths));
    }
    return enforced;
  }

  /**
   * The running containers that must go, with why: those that break the policy and that no
   * accepted desired state vouches for (a refused, unrunnable or deleted deployment's),
   * created by an agent before the policy existed or under a looser one. An accepted
   * deployment's containers were judged when they were created, or are replaced now.
   */
  async evictions(
    observed: readonly ObservedContainer[],
    enforced: ReadonlyMap<string, DesiredEntry>,
  ): Promise<Map<string, string>> {
    const evict = new Map<string, string>();
    const protectedPaths = await this.#protectedPaths();
    for (const c of observed) {
      const key = `${c.labels[ContainerLabels.namespace]}.${c.labels[ContainerLabels.deployment]}`;
      const entry = enforced.get(key);
      if (entry !== undefined && "score" in entry) continue;
      const grants = await this.#grants(c.id);
      if (grants === undefined) continue; // gone meanwhile
      const realPaths = new Map<string, string>();
      for (const { hostPath } of grants.mounts) {
        realPaths.set(hostPath, await this.#resolve(hostPath));
      }
      const violations = grantViolations({
        policy: this.#policy,
        protectedPaths,
        service: c.labels[ContainerLabels.service] ?? c.name,
        grants,
        realPaths,
      });
      if (violations.length > 0) {
        evict.set(c.id, `it breaks this device's policy: ${violations.join("; ")}`);
      }
    }
    return evict;
  }

  /**
   * Protected paths in both spellings (/var/run/podman is /run/podman), resolved once: they
   * are the agent's own, and a pass should not wait on the file system for them.
   */
  #protectedPaths(): Promise<ProtectedPath[]> {
    return this.#resolvedProtected ??= (async () => {
      const paths = [...this.#protected];
      for (const p of this.#protected) {
        const real = await this.#resolve(p.path);
        if (real !== p.path) paths.push({ ...p, path: real });
      }
      return paths;
    })();
  }

  /** A protected path that cannot be resolved is still protected as written. */
  async #resolve(path: string): Promise<string> {
    try {
      return await realPath(path);
    } catch {
      return path;
    }
  }

  async #enforce(
    entry: Extract<DesiredEntry, { score: unknown }>,
    protectedPaths: readonly ProtectedPath[],
  ): Promise<DesiredEntry> {
    const realPaths = new Map<string, string>();
    for (const service of entry.score.data.services) {
      for (const { hostPath } of service.volumes) {
        const normal = normalizeHostPath(hostPath);
        if (!("path" in normal)) continue; // the decision says why
        try {
          realPaths.set(hostPath, await realPath(normal.path));
        } catch (error) {
          // Where it leads is unknown, so it cannot be judged: refused.
          return failed(
            entry,
            `service ${service.name}: host path ${hostPath} cannot be resolved on this device (${
              (error as Error).message
            })`,
          );
        }
      }
    }
    const decision = decidePolicy({
      policy: this.#policy,
      protectedPaths,
      score: entry.score,
      realPaths,
    });
    if (decision.allowed) return { ...entry, score: decision.score };
    return failed(entry, decision.violations.join("; "));
  }
}

function failed(entry: DesiredEntry, why: string): DesiredEntry {
  return {
    ref: entry.ref,
    generation: entry.generation,
    error: `refused by this device's policy: ${why}`,
    ...(entry.revision === undefined ? {} : { revision: entry.revision }),
  };
}
