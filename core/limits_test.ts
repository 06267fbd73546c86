import assert from "node:assert/strict";
import { Buckets } from "./keys.ts";
import { LEASE_BUCKET } from "./lease.ts";
import {
  ACCOUNT_CONNECTION_LIMITS,
  ACCOUNT_JETSTREAM_DEFAULTS,
  bucketLimits,
  MAX_DEPLOYMENT_BYTES,
  userLimits,
} from "./limits.ts";
import { FleetRoles } from "./permissions.ts";

const ALL = [...Object.values(Buckets), LEASE_BUCKET];

Deno.test("every bucket has a size and a value limit, and they fit the account's file storage", () => {
  let reserved = 0;
  for (const bucket of ALL) {
    const { maxBytes, maxValueSize } = bucketLimits(bucket);
    assert.ok(maxValueSize > 0 && maxValueSize < maxBytes, bucket);
    reserved += maxBytes;
  }
  // nats-server reserves each stream's max_bytes: what is left is for the audit stream and
  // releases, and a broker with a few GB free still takes them.
  assert.ok(reserved <= ACCOUNT_JETSTREAM_DEFAULTS.maxFile / 2, `${reserved} reserved`);
  assert.ok(reserved <= 4 * 2 ** 30, `${reserved} bytes: more than a small broker has free`);
});

Deno.test("the bucket limits hold a fleet of 100,000 devices", () => {
  const devices = 100_000;
  const bytes = (bucket: string, perValue: number, values: number, history: number) =>
    assert.ok(bucketLimits(bucket).maxBytes >= perValue * values * history, bucket);
  bytes(Buckets.deviceInfo, 1_500, devices, 1);
  bytes(Buckets.deviceHeartbeat, 300, devices, 1);
  bytes(Buckets.deviceState, 600, devices * 3, 3);
  bytes(Buckets.desiredState, 1_500, devices * 3, 3);
});

Deno.test("a deployment fits its bucket, desired state and one message of every writer", () => {
  assert.equal(bucketLimits(Buckets.deployments).maxValueSize, MAX_DEPLOYMENT_BYTES);
  assert.ok(bucketLimits(Buckets.desiredState).maxValueSize >= MAX_DEPLOYMENT_BYTES);
  // KV headers and the subject travel with the value.
  assert.ok(ACCOUNT_CONNECTION_LIMITS.maxPayload >= MAX_DEPLOYMENT_BYTES + 4096);
  for (const role of ["operator", "maintainer", "admin"] as const) {
    assert.ok(userLimits(role).payload >= MAX_DEPLOYMENT_BYTES + 4096, role);
  }
});

Deno.test("a device's user is the most limited, and no role exceeds the account's limits", () => {
  const device = userLimits("device");
  for (const role of FleetRoles) {
    const limits = userLimits(role);
    assert.ok(
      limits.subs >= device.subs && limits.subs <= ACCOUNT_CONNECTION_LIMITS.maxSubscriptions,
    );
    assert.ok(limits.payload <= ACCOUNT_CONNECTION_LIMITS.maxPayload, role);
  }
  // Its largest report still goes through.
  for (const bucket of [Buckets.deviceInfo, Buckets.deviceState, Buckets.deviceHeartbeat]) {
    assert.ok(bucketLimits(bucket).maxValueSize <= device.payload, bucket);
  }
});
