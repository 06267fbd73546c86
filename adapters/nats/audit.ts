/**
 * The audit trail on NATS (DESIGN.md §9): the JetStream stream `fleet-audit` on
 * `fleet-audit.<kind>.<deviceId>`, where each device writes the records of the commands it
 * received, and people read them by direct gets (no consumer: whoever creates one chooses
 * where the server delivers it, which would let a reader make the server publish anywhere).
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { DiscardPolicy, jetstream, StorageType } from "@nats-io/jetstream";
import { AUDIT_STREAM, AuditRecord, auditSubject } from "../../core/device_commands.ts";
import { parseJsonWith } from "../../core/errors.ts";
import { ensureStream } from "./_stream.ts";

const DAY_NS = 86_400 * 1e9;

/**
 * Creates the audit stream unless it exists: 90 days or 256 MiB, whichever comes first, oldest
 * records dropped; records cannot be deleted one by one or purged through the API.
 *
 * @returns whether it had to be created
 */
export function ensureAuditStream(nc: NatsConnection, replicas: number): Promise<boolean> {
  return ensureStream(nc, {
    name: AUDIT_STREAM,
    subjects: [`${AUDIT_STREAM}.>`],
    storage: StorageType.File,
    num_replicas: replicas,
    max_age: 90 * DAY_NS,
    max_bytes: 256 * 1024 * 1024,
    max_msg_size: 16 * 1024,
    discard: DiscardPolicy.Old,
    allow_direct: true,
    deny_delete: true,
    deny_purge: true,
  });
}

/** Stores `record` on its device's subject; resolves once the stream acknowledged it. */
export async function publishAudit(nc: NatsConnection, record: AuditRecord): Promise<void> {
  await jetstream(nc, { checkAPI: false }).publish(
    auditSubject(record.kind, record.deviceId),
    JSON.stringify(record),
    { timeout: 5_000 },
  );
}

/** A stored record with the broker's timestamp (the control plane's clock). */
export interface StoredAuditRecord {
  record: AuditRecord;
  /** When the stream stored it, epoch ms. */
  storedAt: number;
}

/**
 * The records since `sinceMs` (stored at or after it, by the broker's clock), of one device or
 * all, oldest first, at most `limit`. A record that does not parse is skipped by `onSkip`.
 */
export async function readAudit(
  nc: NatsConnection,
  options: { deviceId?: string; sinceMs: number; limit: number; onSkip?: (why: string) => void },
): Promise<StoredAuditRecord[]> {
  const subject = `${AUDIT_STREAM}.*.${options.deviceId ?? "*"}`;
  const out: StoredAuditRecord[] = [];
  let next: Record<string, unknown> = {
    start_time: new Date(options.sinceMs).toISOString(),
    next_by_subj: subject,
  };
  while (out.length < options.limit) {
    const msg = await nc.request(`$JS.API.DIRECT.GET.${AUDIT_STREAM}`, JSON.stringify(next), {
      timeout: 5_000,
    });
    const code = msg.headers?.code ?? 0;
    if (code === 404 || code === 408) break; // no (further) record
    if (code >= 400) {
      throw new Error(`Cannot read the "${AUDIT_STREAM}" stream: ${msg.headers?.description}`);
    }
    const seq = Number(msg.headers?.get("Nats-Sequence"));
    const storedAt = Date.parse(msg.headers?.get("Nats-Time-Stamp") ?? "");
    try {
      out.push({ record: parseJsonWith(AuditRecord, msg.data, "audit record"), storedAt });
    } catch (error) {
      options.onSkip?.(`record ${seq}: ${(error as Error).message}`);
    }
    next = { seq: seq + 1, next_by_subj: subject };
  }
  return out;
}
