/**
 * Finds the Kubernetes connection settings the way kubectl does: an explicit kubeconfig,
 * else `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account.
 */

import { dirname, isAbsolute, join } from "node:path";
import * as z from "zod";
import { parse as parseYaml } from "yaml";
import { KubeConfigError } from "./errors.ts";

/** Connection settings of a {@linkcode KubeClient}. */
export interface KubeConfig {
  /** API server URL, e.g. `https://127.0.0.1:6443`. */
  server: string;
  /** Bearer token. */
  token?: string;
  /**
   * File holding the bearer token, re-read every minute (in-cluster service account
   * tokens are rotated by the kubelet). Wins over `token` once read.
   */
  tokenFile?: string;
  /** PEM of the CA that signed the server certificate; else the system roots are used. */
  caCertPem?: string;
  /** PEM client certificate chain (kubeconfigs of kind/kubeadm admins). */
  clientCertPem?: string;
  /** PEM private key of `clientCertPem`. */
  clientKeyPem?: string;
  /**
   * The kubeconfig asks not to verify the server certificate. Deno cannot switch
   * verification off per client: run with `--unsafely-ignore-certificate-errors=<host>`
   * or give the CA instead.
   */
  insecureSkipTlsVerify?: boolean;
  /** Default namespace (the context's, or the service account's). */
  namespace?: string;
  /** Where these settings came from (file path or in-cluster folder), for messages. */
  source?: string;
}

/** Options of {@linkcode loadKubeConfig}. */
export interface LoadKubeConfigOptions {
  /** Kubeconfig file to read; nothing else is tried when given. */
  path?: string;
  /** Context to use. @default the kubeconfig's `current-context` */
  context?: string;
  /** Reads environment variables (injectable for tests). @default Deno.env.get */
  env?: (name: string) => string | undefined;
  /**
   * Folder of the in-cluster service account files.
   * @default "/var/run/secrets/kubernetes.io/serviceaccount"
   */
  serviceAccountDir?: string;
}

/** Default location of the service account files inside a pod. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

const NamedCluster = z.object({
  name: z.string(),
  cluster: z.object({
    server: z.string().optional(),
    "certificate-authority": z.string().optional(),
    "certificate-authority-data": z.string().optional(),
    "insecure-skip-tls-verify": z.boolean().optional(),
  }),
});

const NamedUser = z.object({
  name: z.string(),
  user: z.object({
    token: z.string().optional(),
    tokenFile: z.string().optional(),
    "client-certificate": z.string().optional(),
    "client-certificate-data": z.string().optional(),
    "client-key": z.string().optional(),
    "client-key-data": z.string().optional(),
    username: z.string().optional(),
    exec: z.object({ command: z.string().optional() }).optional(),
    "auth-provider": z.object({ name: z.string().optional() }).optional(),
  }).nullish(),
});

const NamedContext = z.object({
  name: z.string(),
  context: z.object({
    cluster: z.string(),
    user: z.string().optional(),
    namespace: z.string().optional(),
  }),
});

const KubeconfigFile = z.object({
  clusters: z.array(NamedCluster).nullish(),
  users: z.array(NamedUser).nullish(),
  contexts: z.array(NamedContext).nullish(),
  "current-context": z.string().nullish(),
});

type NamedCluster = z.infer<typeof NamedCluster>;
type NamedUser = z.infer<typeof NamedUser>;
type NamedContext = z.infer<typeof NamedContext>;

/** One parsed file; entries remember their file so relative paths resolve against it. */
interface Loaded<T> {
  file: string;
  entry: T;
}

/**
 * Loads the connection settings: `options.path`, else the files in `$KUBECONFIG` (merged,
 * first one wins per entry, like kubectl), else `~/.kube/config`, else the in-cluster
 * service account (`KUBERNETES_SERVICE_HOST`/`_PORT` plus the token, `ca.crt` and
 * `namespace` files). Tokens, token files, client certificates and CAs (inline data or
 * file) are supported; exec plugins and auth providers are not.
 *
 * Needs `--allow-env` and `--allow-read`.
 *
 * @throws {KubeConfigError} naming the file and the problem (missing file, bad YAML,
 *   unknown context, no server, unsupported credentials, nothing found at all).
 */
export async function loadKubeConfig(options: LoadKubeConfigOptions = {}): Promise<KubeConfig> {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  if (options.path !== undefined) {
    return resolve([await readKubeconfig(options.path, true)], options.context);
  }
  const listed = (env("KUBECONFIG") ?? "").split(":").filter((p) => p !== "");
  if (listed.length > 0) {
    const files = [];
    for (const path of listed) {
      const file = await readKubeconfig(path, false);
      if (file) files.push(file);
    }
    if (files.length === 0) {
      throw new KubeConfigError(
        listed.join(":"),
        "KUBECONFIG names no existing file; fix the variable or unset it",
      );
    }
    return resolve(files, options.context);
  }
  const home = env("HOME");
  if (home !== undefined && home !== "") {
    const file = await readKubeconfig(join(home, ".kube", "config"), false);
    if (file) return resolve([file], options.context);
  }
  const host = env("KUBERNETES_SERVICE_HOST");
  if (host !== undefined && host !== "") {
    const port = env("KUBERNETES_SERVICE_PORT") ?? "443";
    return await inCluster(host, port, options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
  }
  throw new KubeConfigError(
    home === undefined ? "~/.kube/config" : join(home, ".kube", "config"),
    "no kubeconfig found (no --kubeconfig, KUBECONFIG unset, no ~/.kube/config) and not " +
      "running in a pod (KUBERNETES_SERVICE_HOST unset); point KUBECONFIG at a kubeconfig",
  );
}

interface ParsedFile {
  file: string;
  data: z.infer<typeof KubeconfigFile>;
}

async function readKubeconfig(path: string, required: true): Promise<ParsedFile>;
async function readKubeconfig(path: string, required: false): Promise<ParsedFile | undefined>;
async function readKubeconfig(path: string, required: boolean): Promise<ParsedFile | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && !required) return undefined;
    const why = err instanceof Deno.errors.NotFound ? "the file does not exist" : String(err);
    throw new KubeConfigError(path, why, { cause: err });
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new KubeConfigError(path, `not valid YAML (${(err as Error).message})`, { cause: err });
  }
  const parsed = KubeconfigFile.safeParse(raw ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new KubeConfigError(path, `not a kubeconfig (${issues.join("; ")})`);
  }
  return { file: path, data: parsed.data };
}

function resolve(files: ParsedFile[], wanted: string | undefined): Promise<KubeConfig> {
  const source = files.map((f) => f.file).join(":");
  const clusters = firstByName(files, (d) => d.clusters ?? []);
  const users = firstByName(files, (d) => d.users ?? []);
  const contexts = firstByName(files, (d) => d.contexts ?? []);
  const current = files.map((f) => f.data["current-context"]).find((c) => c);
  const contextName = wanted ?? current;
  const available = [...contexts.keys()].join(", ") || "none";
  if (contextName === undefined || contextName === null) {
    throw new KubeConfigError(
      source,
      `no current-context is set; choose a context (available: ${available})`,
    );
  }
  const context = contexts.get(contextName);
  if (!context) {
    throw new KubeConfigError(
      source,
      `context "${contextName}" does not exist (available: ${available})`,
    );
  }
  return fromContext(context, clusters, users);
}

function firstByName<T extends { name: string }>(
  files: ParsedFile[],
  pick: (data: ParsedFile["data"]) => T[],
): Map<string, Loaded<T>> {
  const out = new Map<string, Loaded<T>>();
  for (const { file, data } of files) {
    for (const entry of pick(data)) {
      if (!out.has(entry.name)) out.set(entry.name, { file, entry });
    }
  }
  return out;
}

async function fromContext(
  { file, entry: context }: Loaded<NamedContext>,
  clusters: Map<string, Loaded<NamedCluster>>,
  users: Map<string, Loaded<NamedUser>>,
): Promise<KubeConfig> {
  const ctx = context.context;
  const cluster = clusters.get(ctx.cluster);
  if (!cluster) {
    throw new KubeConfigError(
      file,
      `context "${context.name}" names cluster "${ctx.cluster}", which is not defined`,
    );
  }
  const c = cluster.entry.cluster;
  if (c.server === undefined || c.server === "") {
    throw new KubeConfigError(cluster.file, `cluster "${ctx.cluster}" has no server URL`);
  }
  const config: KubeConfig = { server: c.server.replace(/\/+$/, ""), source: cluster.file };
  if (ctx.namespace) config.namespace = ctx.namespace;
  if (c["insecure-skip-tls-verify"]) config.insecureSkipTlsVerify = true;
  const ca = await pemFrom(
    cluster.file,
    c["certificate-authority-data"],
    c["certificate-authority"],
  );
  if (ca !== undefined) config.caCertPem = ca;

  if (ctx.user === undefined) return config;
  const user = users.get(ctx.user);
  if (!user) {
    throw new KubeConfigError(
      file,
      `context "${context.name}" names user "${ctx.user}", which is not defined`,
    );
  }
  const u = user.entry.user ?? {};
  const where = `user "${ctx.user}"`;
  if (u.exec) {
    throw new KubeConfigError(
      user.file,
      `${where} uses an exec credential plugin (${u.exec.command ?? "no command"}), which ` +
        "Fleet does not support; use a kubeconfig with a token or a client certificate",
    );
  }
  if (u["auth-provider"]) {
    throw new KubeConfigError(
      user.file,
      `${where} uses the auth provider "${u["auth-provider"].name ?? ""}", which Fleet does ` +
        "not support; use a kubeconfig with a token or a client certificate",
    );
  }
  if (u.username !== undefined && u.token === undefined) {
    throw new KubeConfigError(
      user.file,
      `${where} uses basic authentication, which Kubernetes removed; use a token`,
    );
  }
  if (u.token !== undefined) config.token = u.token;
  if (u.tokenFile !== undefined) {
    const path = relativeTo(user.file, u.tokenFile);
    config.tokenFile = path;
    config.token = await readFileFor(user.file, path, `${where}'s tokenFile`).then((t) => t.trim());
  }
  const cert = await pemFrom(user.file, u["client-certificate-data"], u["client-certificate"]);
  const key = await pemFrom(user.file, u["client-key-data"], u["client-key"]);
  if ((cert === undefined) !== (key === undefined)) {
    throw new KubeConfigError(
      user.file,
      `${where} has a client certificate without its key (or the reverse); give both`,
    );
  }
  if (cert !== undefined && key !== undefined) {
    config.clientCertPem = cert;
    config.clientKeyPem = key;
  }
  return config;
}

async function inCluster(host: string, port: string, dir: string): Promise<KubeConfig> {
  const hostPart = host.includes(":") ? `[${host}]` : host;
  const tokenFile = join(dir, "token");
  const token = (await readFileFor(dir, tokenFile, "the service account token")).trim();
  const config: KubeConfig = {
    server: `https://${hostPart}:${port}`,
    token,
    tokenFile,
    caCertPem: await readFileFor(dir, join(dir, "ca.crt"), "the cluster CA (ca.crt)"),
    source: dir,
  };
  try {
    const namespace = (await Deno.readTextFile(join(dir, "namespace"))).trim();
    if (namespace !== "") config.namespace = namespace;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return config;
}

async function pemFrom(
  file: string,
  data: string | undefined,
  path: string | undefined,
): Promise<string | undefined> {
  if (data !== undefined && data !== "") {
    try {
      const bytes = Uint8Array.from(atob(data.replace(/\s+/g, "")), (ch) => ch.charCodeAt(0));
      return new TextDecoder().decode(bytes);
    } catch (err) {
      throw new KubeConfigError(file, "a *-data field is not valid base64", { cause: err });
    }
  }
  if (path !== undefined && path !== "") {
    return await readFileFor(file, relativeTo(file, path), JSON.stringify(path));
  }
  return undefined;
}

function relativeTo(kubeconfig: string, path: string): string {
  return isAbsolute(path) ? path : join(dirname(kubeconfig), path);
}

async function readFileFor(source: string, path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound ? "does not exist" : `cannot be read (${err})`;
    throw new KubeConfigError(source, `${what} at ${path} ${why}`, { cause: err });
  }
}
