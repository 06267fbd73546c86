import assert from "node:assert/strict";
import { JetStreamApiError } from "@nats-io/jetstream";
import { PermissionViolationError, RequestError } from "@nats-io/nats-core";
import { brokerDenial, deniedByBroker } from "./denied.ts";
import { hasJetStreamCode, JetStreamCodes } from "./jetstream_codes.ts";

const nameInUse = new JetStreamApiError({
  code: 400,
  err_code: JetStreamCodes.StreamNameInUse,
  description: "stream name already in use with a different configuration",
});

Deno.test("hasJetStreamCode() goes by JetStream's code, never by the text", () => {
  assert.equal(hasJetStreamCode(nameInUse, JetStreamCodes.StreamNameInUse), true);
  assert.equal(
    hasJetStreamCode(nameInUse, JetStreamCodes.StreamNotFound, JetStreamCodes.StreamNameInUse),
    true,
  );
  assert.equal(hasJetStreamCode(nameInUse, JetStreamCodes.StreamNotFound), false);
  assert.equal(
    hasJetStreamCode(new Error(nameInUse.message), JetStreamCodes.StreamNameInUse),
    false,
  );
  assert.equal(hasJetStreamCode(undefined, JetStreamCodes.StreamNameInUse), false);
});

Deno.test("brokerDenial() finds the broker's refusal behind the error that carries it", () => {
  const refusal = new PermissionViolationError(
    'Permissions Violation for Publish to "x"',
    "publish",
    "x",
  );
  assert.equal(brokerDenial(refusal), refusal);
  assert.equal(brokerDenial(new RequestError("request failed", { cause: refusal })), refusal);
  assert.equal(
    deniedByBroker(new Error("outer", { cause: new Error("inner", { cause: refusal }) })),
    true,
  );
  assert.equal(brokerDenial(new Error("permissions violation")), undefined);
  assert.equal(deniedByBroker(nameInUse), false);
});
