/** Builds a Deployment object from `fleet apply deployment` flags. Pure. */
import { API_VERSION, Deployment } from "./deployment.ts";
import { describeIssues, FleetError } from "./errors.ts";
import { parseSelector } from "./selector.ts";
import { validateIdentifier } from "./ids.ts";

export interface DeploymentFlags {
  name: string;
  namespace: string;
  image: string;
  /** Service name inside the workload; defaults to the deployment name. */
  service?: string;
  ports: readonly string[];
  /** `NAME=value` */
  env: readonly string[];
  /** `/host/path:/container/path[:ro]` */
  volumes: readonly string[];
  restart?: string;
  /** kubectl selector syntax, ANDed. */
  selectors: readonly string[];
  /** No selector: every device bound to the namespace, said explicitly. */
  allBoundDevices?: boolean;
}

/** Flags that do not make a valid deployment; the message names the flag and the value. */
export class DeploymentFlagError extends FleetError {
  override name = "DeploymentFlagError";
  constructor(message: string, options?: ErrorOptions) {
    super("usage", message, options);
  }
}

function splitEnv(text: string): { name: string; value: string } {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new DeploymentFlagError(`Invalid --env ${JSON.stringify(text)}: expected NAME=value`);
  }
  return { name: text.slice(0, eq), value: text.slice(eq + 1) };
}

function splitVolume(text: string): { hostPath: string; containerPath: string; readOnly: boolean } {
  const parts = text.split(":");
  const mode = parts.length === 3 ? parts[2] : undefined;
  if (
    parts.length < 2 || parts.length > 3 || (mode !== undefined && mode !== "ro" && mode !== "rw")
  ) {
    throw new DeploymentFlagError(
      `Invalid --volume ${
        JSON.stringify(text)
      }: expected /host/path:/container/path or /host/path:/container/path:ro`,
    );
  }
  const [hostPath = "", containerPath = ""] = parts;
  if (!hostPath.startsWith("/") || !containerPath.startsWith("/")) {
    throw new DeploymentFlagError(
      `Invalid --volume ${
        JSON.stringify(text)
      }: both paths must be absolute, as in /host/path:/container/path[:ro]`,
    );
  }
  return { hostPath, containerPath, readOnly: mode === "ro" };
}

/**
 * @throws InvalidIdentifierError, DeploymentFlagError or SelectorSyntaxError naming the offending value
 */
export function buildDeployment(flags: DeploymentFlags): Deployment {
  // Checked first: the service name defaults to it, so a bad name would be reported twice.
  validateIdentifier("deployment name", flags.name);
  const all = flags.allBoundDevices === true;
  const candidate = {
    apiVersion: API_VERSION,
    kind: "Deployment",
    metadata: { name: flags.name, namespace: flags.namespace },
    spec: {
      targetSelector: parseSelector(flags.selectors),
      ...(all ? { targetAllBoundDevices: true } : {}),
      score: {
        type: "PodmanV0",
        data: {
          services: [{
            name: flags.service ?? flags.name,
            image: flags.image,
            ports: [...flags.ports],
            env: flags.env.map(splitEnv),
            volumes: flags.volumes.map(splitVolume),
            ...(flags.restart !== undefined ? { restartPolicy: flags.restart } : {}),
          }],
        },
      },
    },
  };
  const result = Deployment.safeParse(candidate);
  if (!result.success) {
    throw new DeploymentFlagError(`Invalid deployment: ${describeIssues(result.error)}`);
  }
  if (all === (flags.selectors.length > 0)) {
    throw new DeploymentFlagError(
      all
        ? "--all-bound-devices cannot be combined with --selector: it means every device " +
          `bound to namespace ${flags.namespace}`
        : "apply deployment needs --selector naming the devices it targets, or " +
          `--all-bound-devices for every device bound to namespace ${flags.namespace}`,
    );
  }
  return result.data;
}
