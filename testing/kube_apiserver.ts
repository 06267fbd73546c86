/**
 * Runs a real kube-apiserver with its own etcd on loopback, for tests (the envtest idea
 * from kubebuilder). Binaries come from `~/.cache/fleet/kube-<version>-etcd-<version>/` (built
 * by `scripts/build-kube-test-bins.sh`) unless `FLEET_KUBE_BIN_DIR` names another folder.
 *
 * TLS uses a CA generated with `openssl` for each server, so clients verify the serving
 * certificate with {@linkcode KubeApiServer.caCertPem}. Authentication is a static token
 * file with an admin (`system:masters`) and an RBAC-restricted user
 * {@linkcode OPERATOR_TEST_USER} with no groups and no permissions until a test grants some.
 * No controllers run: namespaces never finish deleting, and nothing garbage-collects.
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify as toYaml } from "yaml";
import { KubeClient } from "../adapters/kube/client.ts";
import { KubeApiError, KubeError, KubeUnavailableError } from "../adapters/kube/errors.ts";
import type { KubeConfig } from "../adapters/kube/kubeconfig.ts";
import { freePort, stopChild } from "../adapters/process.ts";
import { waitFor } from "../adapters/timers.ts";
import { fleetCacheDir } from "../adapters/cache_dir.ts";

/** Environment variable naming the folder with `kube-apiserver` and `etcd`. */
export const KUBE_BIN_DIR_ENV = "FLEET_KUBE_BIN_DIR";

/** User name of {@linkcode KubeApiServer.operatorToken}: no groups, no RBAC grants. */
export const OPERATOR_TEST_USER = "fleet-operator-test";

/** User name of {@linkcode KubeApiServer.token} (group `system:masters`). */
export const ADMIN_TEST_USER = "fleet-admin-test";

const READY_TIMEOUT_MS = 60_000;
const ETCD_READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const LOG_TAIL_LINES = 25;
const PORT_ATTEMPTS = 4;

/** Options of {@linkcode startKubeApiServer}. */
export interface KubeApiServerOptions {
  /** Folder holding `kube-apiserver` and `etcd`. @default {@linkcode kubeBinDir}() */
  binDir?: string;
  /** Extra kube-apiserver flags, appended after ours (e.g. `--feature-gates=...`). */
  extraArgs?: string[];
  /**
   * The host address pods reach the API server at, for a cluster with a kubelet
   * (testing/kube_node.ts): the server then listens on all addresses, advertises this one
   * as the `kubernetes` Service's endpoint, its certificate also names it and the Service's
   * IP, and pods get service account tokens (ServiceAccount admission stays on).
   */
  nodeAddress?: string;
}

/** A running kube-apiserver and etcd; `await using` stops both and removes their files. */
export interface KubeApiServer extends AsyncDisposable {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Admin bearer token (user {@linkcode ADMIN_TEST_USER}, group `system:masters`). */
  readonly token: string;
  /** Bearer token of {@linkcode OPERATOR_TEST_USER}: authenticated, but RBAC grants nothing. */
  readonly operatorToken: string;
  /** PEM of the CA that signed the serving certificate. */
  readonly caCertPem: string;
  /** A kubeconfig file for the admin (context `fleet-test`). */
  readonly kubeconfigPath: string;
  /** Connection settings of the admin, for `new KubeClient(...)`. */
  readonly adminConfig: KubeConfig;
  /** Connection settings of {@linkcode OPERATOR_TEST_USER}. */
  readonly operatorConfig: KubeConfig;
  /** etcd's client URL (plain HTTP on loopback). */
  readonly etcdUrl: string;
  /** Temporary folder with certificates, data and logs; removed on dispose. */
  readonly dir: string;
  /** How long the first start took (etcd and kube-apiserver until `/readyz` said ok). */
  readonly startupMs: number;
  /** Whether kube-apiserver is running (etcd runs until dispose). */
  readonly running: boolean;
  /** Stops kube-apiserver (SIGTERM, SIGKILL after 15 s); etcd keeps running. */
  stop(): Promise<void>;
  /**
   * Stops kube-apiserver if running and starts it again on the same port and etcd,
   * resolved once it is ready. `kill: true` stops it with SIGKILL, like a crash: open
   * connections break instead of being closed.
   */
  restart(options?: { kill?: boolean }): Promise<void>;
  /**
   * Compacts etcd's history up to its current revision, so watches from older
   * resourceVersions can only be answered with 410 Gone.
   * @returns the revision compacted to.
   */
  compactEtcd(): Promise<number>;
  /** The last lines of kube-apiserver's log (and etcd's with `"etcd"`). */
  logTail(lines?: number, which?: "kube-apiserver" | "etcd"): Promise<string>;
}

/** Starting the test API server failed; the message says why and what to do. */
export class KubeApiServerError extends KubeError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "KubeApiServerError";
  }
}

/**
 * The folder the binaries are taken from: `$FLEET_KUBE_BIN_DIR`, else
 * `<fleetCacheDir()>/kube-<version>-etcd-<version>`, the versions pinned in
 * `fixtures/kube-apiserver` (where `scripts/build-kube-test-bins.sh` builds them).
 */
export function kubeBinDir(): string {
  const override = Deno.env.get(KUBE_BIN_DIR_ENV);
  if (override) return override;
  const pinned = (file: string, module: string): string => {
    const text = Deno.readTextFileSync(fileURLToPath(new URL(file, import.meta.url)));
    const line = new RegExp(`^\\s*(?:require\\s+)?${module.replaceAll(".", "\\.")} (v\\S+)$`, "m");
    const version = line.exec(text)?.[1];
    if (version === undefined) throw new KubeApiServerError(`${file} does not pin ${module}`);
    return version;
  };
  const kube = pinned("../fixtures/kube-apiserver/go.mod", "k8s.io/kubernetes");
  const etcd = pinned("../fixtures/kube-apiserver/etcd/go.mod", "go.etcd.io/etcd/server/v3");
  return `${fleetCacheDir()}/kube-${kube}-etcd-${etcd}`;
}

/**
 * Starts etcd and kube-apiserver on free loopback ports and waits until `/readyz` answers
 * ok (up to 60 s). Needs `--allow-run`, `--allow-net`, `--allow-read`, `--allow-write`,
 * `--allow-env`, and `openssl` on PATH.
 *
 * @example
 * ```ts
 * await using kube = await startKubeApiServer();
 * using client = new KubeClient(kube.adminConfig);
 * ```
 * @throws {KubeApiServerError} when a binary is missing (run
 *   `scripts/build-kube-test-bins.sh`), a certificate cannot be made, or a process exits
 *   or is not ready in time (with the end of its log).
 */
export async function startKubeApiServer(
  options: KubeApiServerOptions = {},
): Promise<KubeApiServer> {
  const started = performance.now();
  const binDir = options.binDir ?? kubeBinDir();
  const bins = { apiserver: join(binDir, "kube-apiserver"), etcd: join(binDir, "etcd") };
  for (const path of Object.values(bins)) {
    try {
      await Deno.stat(path);
    } catch (err) {
      throw new KubeApiServerError(
        `Cannot start the test Kubernetes API server: ${path} does not exist; build it with ` +
          `\`bash scripts/build-kube-test-bins.sh\` (or set ${KUBE_BIN_DIR_ENV} to a folder ` +
          "holding kube-apiserver and etcd)",
        { cause: err },
      );
    }
  }
  const dir = await Deno.makeTempDir({ prefix: "fleet-kube-" });
  const server = new KubeApiServerProcess(dir, bins, options.extraArgs ?? [], options.nodeAddress);
  try {
    await server.setUp();
    await server.startEtcd();
    await server.startApiServer(true);
    server.startupMs = Math.round(performance.now() - started);
    return server;
  } catch (err) {
    await server[Symbol.asyncDispose]();
    throw err;
  }
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Thrown internally when a chosen port turned out to be taken, so another is tried. */
class PortInUseError extends KubeApiServerError {}

/** One child process whose stderr and stdout go to a log file. */
export class LoggedProcess {
  readonly #label: string;
  readonly #bin: string;
  readonly #logFile: string;
  #child: Deno.ChildProcess | undefined;
  #status: Promise<Deno.CommandStatus> | undefined;
  #exited: Deno.CommandStatus | undefined;
  #logging: Promise<unknown> | undefined;

  constructor(label: string, bin: string, logFile: string) {
    this.#label = label;
    this.#bin = bin;
    this.#logFile = logFile;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#exited === undefined;
  }

  /** Process id while running. */
  get pid(): number | undefined {
    return this.running ? this.#child?.pid : undefined;
  }

  /** Exit status if it has exited since it was started. */
  get exited(): Deno.CommandStatus | undefined {
    return this.#exited;
  }

  async start(args: string[]): Promise<void> {
    // Through setpriv (util-linux), the kernel kills the child when this process dies,
    // even by SIGKILL or a test timeout; otherwise an orphaned etcd would run on forever.
    const guard = await deathSignalWrapper();
    const child = new Deno.Command(guard ?? this.#bin, {
      args: guard ? ["--pdeathsig", "SIGKILL", "--", this.#bin, ...args] : args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const log = await Deno.open(this.#logFile, { create: true, append: true });
    this.#child = child;
    this.#exited = undefined;
    const status = child.status;
    this.#status = status;
    status.then((s) => this.#exited = s, () => {});
    // Both streams into one file: pipe each without closing it, close once both ended.
    const copy = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) await writeAll(log, chunk);
    };
    this.#logging = Promise.allSettled([copy(child.stdout), copy(child.stderr)])
      .finally(() => log.close());
  }

  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const child = this.#child;
    const status = this.#status;
    if (!child || !status) return;
    if (this.#exited === undefined) {
      await stopChild(child, status, signal, STOP_TIMEOUT_MS);
    }
    await this.#logging;
    this.#child = undefined;
    this.#status = undefined;
  }

  async logTail(lines: number): Promise<string> {
    let text = "";
    try {
      text = await Deno.readTextFile(this.#logFile);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const all = text.split("\n").filter((line) => line.trim() !== "");
    return all.slice(-lines).join("\n") || `(${this.#label} wrote no log)`;
  }
}

let setpriv: Promise<string | undefined> | undefined;

/** `setpriv` if this system has it (it `exec`s the program, so the pid stays the same). */
function deathSignalWrapper(): Promise<string | undefined> {
  setpriv ??= Deno.stat("/usr/bin/setpriv").then(() => "/usr/bin/setpriv", () => undefined);
  return setpriv;
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}

class KubeApiServerProcess implements KubeApiServer {
  readonly dir: string;
  readonly token = randomToken();
  readonly operatorToken = randomToken();
  caCertPem = "";
  startupMs = 0;
  readonly kubeconfigPath: string;
  readonly #bins: { apiserver: string; etcd: string };
  readonly #extraArgs: string[];
  readonly #nodeAddress: string | undefined;
  readonly #pki: string;
  readonly #etcd: LoggedProcess;
  readonly #apiserver: LoggedProcess;
  #port = 0;
  #etcdPort = 0;
  #disposed = false;

  constructor(
    dir: string,
    bins: { apiserver: string; etcd: string },
    extraArgs: string[],
    nodeAddress: string | undefined,
  ) {
    this.dir = dir;
    this.#bins = bins;
    this.#extraArgs = extraArgs;
    this.#nodeAddress = nodeAddress;
    this.#pki = join(dir, "pki");
    this.kubeconfigPath = join(dir, "kubeconfig");
    this.#etcd = new LoggedProcess("etcd", bins.etcd, join(dir, "etcd.log"));
    this.#apiserver = new LoggedProcess(
      "kube-apiserver",
      bins.apiserver,
      join(dir, "kube-apiserver.log"),
    );
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  get etcdUrl(): string {
    return `http://127.0.0.1:${this.#etcdPort}`;
  }

  get running(): boolean {
    return this.#apiserver.running;
  }

  get adminConfig(): KubeConfig {
    return { server: this.url, token: this.token, caCertPem: this.caCertPem };
  }

  get operatorConfig(): KubeConfig {
    return { server: this.url, token: this.operatorToken, caCertPem: this.caCertPem };
  }

  /** Certificates, the service account key, the token file. */
  async setUp(): Promise<void> {
    await Deno.mkdir(this.#pki);
    const sans = this.#nodeAddress ? `, IP:${this.#nodeAddress}, IP:${KUBERNETES_SERVICE_IP}` : "";
    await Deno.writeTextFile(join(this.#pki, "openssl.cnf"), OPENSSL_CONFIG + sans + "\n");
    const ossl = (...args: string[]) => openssl(this.#pki, args);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await ossl(
      "req",
      "-x509",
      ...ec,
      "-config",
      "openssl.cnf",
      "-extensions",
      "ca_ext",
      "-subj",
      "/CN=fleet-test-ca",
      "-days",
      "30",
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
    );
    await ossl(
      "req",
      "-new",
      ...ec,
      "-config",
      "openssl.cnf",
      "-subj",
      "/CN=kube-apiserver",
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
    );
    await ossl(
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "30",
      "-extfile",
      "openssl.cnf",
      "-extensions",
      "server_ext",
      "-out",
      "server.crt",
    );
    await ossl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key");
    await ossl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub");
    this.caCertPem = await Deno.readTextFile(join(this.#pki, "ca.crt"));
    // token,user,uid,"group1,group2"; the operator user has no groups at all.
    await Deno.writeTextFile(
      join(this.dir, "tokens.csv"),
      `${this.token},${ADMIN_TEST_USER},${ADMIN_TEST_USER},"system:masters"\n` +
        `${this.operatorToken},${OPERATOR_TEST_USER},${OPERATOR_TEST_USER}\n`,
    );
  }

  async startEtcd(): Promise<void> {
    for (let attempt = 1;; attempt++) {
      this.#etcdPort = freePort();
      const peer = freePort();
      const peerUrl = `http://127.0.0.1:${peer}`;
      await this.#etcd.start([
        "--name=fleet-test",
        `--data-dir=${join(this.dir, "etcd-data")}`,
        `--listen-client-urls=${this.etcdUrl}`,
        `--advertise-client-urls=${this.etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=fleet-test=${peerUrl}`,
        "--unsafe-no-fsync", // test data: durability does not matter, speed does
        "--log-level=warn",
      ]);
      try {
        await this.#waitEtcd();
        return;
      } catch (err) {
        await this.#etcd.stop();
        if (!(err instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw err;
        await Deno.remove(join(this.dir, "etcd-data"), { recursive: true }).catch(() => {});
      }
    }
  }

  async startApiServer(first: boolean): Promise<void> {
    for (let attempt = 1;; attempt++) {
      if (first) this.#port = freePort();
      await this.#apiserver.start(this.#apiServerArgs());
      try {
        await this.#waitApiServer();
        if (first) await this.#writeKubeconfig();
        return;
      } catch (err) {
        await this.#apiserver.stop();
        if (!first || !(err instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw err;
      }
    }
  }

  async stop(): Promise<void> {
    await this.#apiserver.stop();
  }

  async restart(options: { kill?: boolean } = {}): Promise<void> {
    await this.#apiserver.stop(options.kill ? "SIGKILL" : "SIGTERM");
    await this.startApiServer(false);
  }

  async compactEtcd(): Promise<number> {
    // etcd's JSON gateway: a range read returns the current revision in its header.
    const range = await this.#etcdCall("/v3/kv/range", { key: btoa("fleet-compaction-probe") });
    const revision = Number((range as { header?: { revision?: string } }).header?.revision);
    if (!Number.isFinite(revision) || revision <= 0) {
      throw new KubeApiServerError(`etcd returned no revision: ${JSON.stringify(range)}`);
    }
    await this.#etcdCall("/v3/kv/compaction", { revision: String(revision), physical: true });
    return revision;
  }

  logTail(lines = LOG_TAIL_LINES, which: "kube-apiserver" | "etcd" = "kube-apiserver") {
    return (which === "etcd" ? this.#etcd : this.#apiserver).logTail(lines);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#apiserver.stop();
    await this.#etcd.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  #apiServerArgs(): string[] {
    const pki = (file: string) => join(this.#pki, file);
    return [
      `--etcd-servers=${this.etcdUrl}`,
      `--secure-port=${this.#port}`,
      `--bind-address=${this.#nodeAddress ? "0.0.0.0" : "127.0.0.1"}`,
      `--advertise-address=${this.#nodeAddress ?? "127.0.0.1"}`,
      `--cert-dir=${this.#pki}`,
      `--tls-cert-file=${pki("server.crt")}`,
      `--tls-private-key-file=${pki("server.key")}`,
      `--token-auth-file=${join(this.dir, "tokens.csv")}`,
      "--authorization-mode=RBAC",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${pki("sa.pub")}`,
      `--service-account-signing-key-file=${pki("sa.key")}`,
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      // Without it, an open watch holds a SIGTERM'd server up for its 60 s request timeout;
      // with it, watches are closed at once (clients see a cleanly ended stream) and the
      // server exits in ~1 s.
      "--shutdown-watch-termination-grace-period=2s",
      "--profiling=false",
      // Without a controller manager, pods would wait for a default ServiceAccount.
      ...(this.#nodeAddress ? [] : ["--disable-admission-plugins=ServiceAccount"]),
      ...this.#extraArgs,
    ];
  }

  async #waitEtcd(): Promise<void> {
    const outcome = await waitFor(
      "etcd",
      async () => {
        if (this.#etcd.exited !== undefined) return "exited";
        try {
          const response = await fetch(`${this.etcdUrl}/health`, {
            signal: AbortSignal.timeout(2000),
          });
          const body = await response.text();
          if (response.ok && body.includes('"health":"true"')) return "healthy";
        } catch {
          // Not listening yet.
        }
        return undefined;
      },
      ETCD_READY_TIMEOUT_MS,
      50,
    ).catch(() => "timed out");
    if (outcome === "healthy") return;
    const tail = await this.#etcd.logTail(LOG_TAIL_LINES);
    if (/address already in use/i.test(tail)) {
      throw new PortInUseError(`etcd could not listen on its port: ${tail}`);
    }
    const exited = this.#etcd.exited;
    const why = exited
      ? `exited with code ${exited.code} during start-up`
      : `was not healthy at ${this.etcdUrl} within ${ETCD_READY_TIMEOUT_MS / 1000} s`;
    throw new KubeApiServerError(`etcd ${why}; last log lines:\n${tail}`);
  }

  async #waitApiServer(): Promise<void> {
    using client = new KubeClient(this.adminConfig, { requestTimeoutMs: 5000 });
    let last = "no answer yet";
    /** Anything but "not up yet" ends the wait at once. */
    let fatal: unknown;
    const outcome = await waitFor(
      "kube-apiserver",
      async () => {
        if (this.#apiserver.exited !== undefined) return "exited";
        try {
          await client.health();
          return "ready";
        } catch (err) {
          if (!(err instanceof KubeUnavailableError || err instanceof KubeApiError)) {
            fatal = err;
            return "failed";
          }
          last = err.message;
          return undefined;
        }
      },
      READY_TIMEOUT_MS,
      100,
    ).catch(() => "timed out");
    if (outcome === "ready") return;
    if (outcome === "failed") throw fatal;
    const tail = await this.#apiserver.logTail(LOG_TAIL_LINES);
    if (/address already in use/i.test(tail)) {
      throw new PortInUseError(`kube-apiserver could not listen on ${this.url}: ${tail}`);
    }
    const exited = this.#apiserver.exited;
    const why = exited
      ? `exited with code ${exited.code} during start-up`
      : `was not ready at ${this.url} within ${READY_TIMEOUT_MS / 1000} s (${last})`;
    throw new KubeApiServerError(`kube-apiserver ${why}; last log lines:\n${tail}`);
  }

  async #writeKubeconfig(): Promise<void> {
    const kubeconfig = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{
        name: "fleet-test",
        cluster: { server: this.url, "certificate-authority-data": btoa(this.caCertPem) },
      }],
      users: [{ name: ADMIN_TEST_USER, user: { token: this.token } }],
      contexts: [{
        name: "fleet-test",
        context: { cluster: "fleet-test", user: ADMIN_TEST_USER, namespace: "default" },
      }],
      "current-context": "fleet-test",
    };
    await Deno.writeTextFile(this.kubeconfigPath, toYaml(kubeconfig), { mode: 0o600 });
  }

  async #etcdCall(path: string, body: unknown): Promise<unknown> {
    const response = await fetch(`${this.etcdUrl}${path}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) {
      throw new KubeApiServerError(`etcd refused ${path} (HTTP ${response.status}): ${text}`);
    }
    return JSON.parse(text);
  }
}

/** Services' virtual IPs; the `kubernetes` Service (the API server) gets the first. */
export const SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/24";
const KUBERNETES_SERVICE_IP = "10.96.0.1";

// subjectAltName is last: a cluster's server certificate appends its addresses to it.
const OPENSSL_CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = fleet-test
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, DNS:localhost`;

async function openssl(cwd: string, args: string[]): Promise<void> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command("openssl", { args, cwd, stdin: "null" }).output();
  } catch (err) {
    throw new KubeApiServerError(
      "Cannot make the test API server's certificates: `openssl` was not found; install it " +
        "(apt-get install openssl)",
      { cause: err },
    );
  }
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim();
    throw new KubeApiServerError(`openssl ${args.slice(0, 2).join(" ")} failed: ${stderr}`);
  }
}
