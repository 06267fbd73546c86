/**
 * Namespaces' device bindings as an admin sets and reads them (core/tenancy.ts): on the nats
 * source the `fleet-namespaces` bucket, on the kube source the Namespace annotation
 * `fleet.nationtech.io/device-selector`. Each binding is checked before it is written.
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import YAML from "yaml";
import {
  DEVICE_SELECTOR_ANNOTATION,
  NamespaceBinding,
  NAMESPACES_BUCKET,
  parseBinding,
  parseJsonWith,
  validateIdentifier,
  WireFormatError,
} from "../core/mod.ts";
import type { Logger } from "../adapters/logger.ts";
import { ensureBucket, readBucket } from "../adapters/nats/mod.ts";
import { type KubeClient, NamespaceType } from "../adapters/kube/mod.ts";
import { NAMESPACES_HISTORY } from "../operator/nats_namespace_bindings.ts";
import { ObjectMeta } from "../operator/kube_resources.ts";
import { renderTable } from "./table.ts";
import type { OutputFormat } from "./render.ts";

/** How long a read of the bucket may take before the command gives up. */
const READ_TIMEOUT_MS = 30_000;

/** A namespace and the devices it may target; `binding` undefined: none (bound to no device). */
export interface NamespaceRow {
  namespace: string;
  binding: string | undefined;
}

/** Where bindings are kept; admins write, everyone with read rights lists. */
export interface BindingStore {
  /** @throws SelectorSyntaxError or InvalidIdentifierError before anything is written */
  bind(namespace: string, selector: string): Promise<void>;
  /** @returns false when the namespace had no binding */
  unbind(namespace: string): Promise<boolean>;
  list(): Promise<NamespaceRow[]>;
}

/** The binding as stored, once the namespace and the selector are checked. */
function checked(namespace: string, selector: string): string {
  validateIdentifier("namespace", namespace);
  parseBinding(selector);
  return selector.trim();
}

export class NatsBindingStore implements BindingStore {
  readonly #nc: NatsConnection;
  readonly #log: Logger;

  constructor(nc: NatsConnection, log: Logger) {
    this.#nc = nc;
    this.#log = log;
  }

  async bind(namespace: string, selector: string): Promise<void> {
    const value: NamespaceBinding = { deviceSelector: checked(namespace, selector) };
    await (await this.#kv()).put(namespace, JSON.stringify(value));
  }

  async unbind(namespace: string): Promise<boolean> {
    validateIdentifier("namespace", namespace);
    const kv = await this.#kv();
    const entry = await kv.get(namespace);
    if (entry === null || entry.operation !== "PUT") return false;
    await kv.delete(namespace);
    return true;
  }

  async list(): Promise<NamespaceRow[]> {
    await this.#kv();
    const values = await readBucket(this.#nc, NAMESPACES_BUCKET, this.#log, {
      signal: AbortSignal.timeout(READ_TIMEOUT_MS),
    });
    return [...values].map(([namespace, value]) => {
      let binding: string;
      try {
        binding = parseJsonWith(NamespaceBinding, value, `binding of ${namespace}`).deviceSelector;
      } catch (error) {
        if (!(error instanceof WireFormatError)) throw error;
        // Shown as it is: an unreadable value binds to no device (the operator says so).
        binding = "<unreadable>";
      }
      return { namespace, binding };
    }).sort((a, b) => a.namespace.localeCompare(b.namespace));
  }

  #kv() {
    return ensureBucket(this.#nc, NAMESPACES_BUCKET, { replicas: 1, history: NAMESPACES_HISTORY });
  }
}

export class KubeBindingStore implements BindingStore {
  readonly #client: KubeClient;

  constructor(client: KubeClient) {
    this.#client = client;
  }

  async bind(namespace: string, selector: string): Promise<void> {
    const text = checked(namespace, selector);
    await this.#client.mergePatch(NamespaceType, namespace, {
      metadata: { annotations: { [DEVICE_SELECTOR_ANNOTATION]: text } },
    });
  }

  async unbind(namespace: string): Promise<boolean> {
    validateIdentifier("namespace", namespace);
    const current = ObjectMeta.safeParse(
      (await this.#client.get<{ metadata?: unknown }>(NamespaceType, namespace))?.metadata,
    );
    if (current.data?.annotations?.[DEVICE_SELECTOR_ANNOTATION] === undefined) return false;
    await this.#client.mergePatch(NamespaceType, namespace, {
      metadata: { annotations: { [DEVICE_SELECTOR_ANNOTATION]: null } },
    });
    return true;
  }

  async list(): Promise<NamespaceRow[]> {
    const { items } = await this.#client.list<{ metadata?: unknown }>(NamespaceType);
    return items.flatMap((item) => {
      const metadata = ObjectMeta.safeParse(item.metadata);
      if (!metadata.success) return [];
      const binding = metadata.data.annotations?.[DEVICE_SELECTOR_ANNOTATION];
      return [{ namespace: metadata.data.name, binding }];
    }).sort((a, b) => a.namespace.localeCompare(b.namespace));
  }
}

/** Namespaces as a table (DEVICES: the binding, `<none>` for no device) or JSON/YAML. */
export function renderNamespaces(rows: NamespaceRow[], format: OutputFormat): string {
  if (format === "json" || format === "yaml") {
    const items = rows.map((r) => ({ namespace: r.namespace, deviceSelector: r.binding ?? null }));
    return format === "json"
      ? JSON.stringify({ items }, null, 2)
      : YAML.stringify({ items }).trimEnd();
  }
  if (rows.length === 0) return "No namespaces.";
  return renderTable(
    ["NAMESPACE", "DEVICES"],
    rows.map((r) => [r.namespace, r.binding ?? "<none>"]),
  );
}
