import assert from "node:assert/strict";
import { InvalidIdentifierError } from "./ids.ts";
import { deviceConsumer, deviceOfConsumer } from "./device_consumer.ts";

Deno.test("deviceConsumer() reads the device's keys, delivered under its own inbox", () => {
  assert.deepStrictEqual(deviceConsumer("pi-1"), {
    stream: "KV_desired-state",
    name: "device-pi-1",
    filterSubject: "$KV.desired-state.pi-1.>",
    deliverSubject: "_INBOX_pi-1.desired-state",
  });
  assert.throws(() => deviceConsumer("pi.*"), InvalidIdentifierError);
});

Deno.test("deviceOfConsumer() names the device of a device's consumer, nothing else", () => {
  assert.equal(deviceOfConsumer("device-pi-1"), "pi-1");
  for (const other of ["fleet_watch_abc", "device-", "device-Pi", "pi-1", "device-a.b"]) {
    assert.equal(deviceOfConsumer(other), undefined, other);
  }
});
