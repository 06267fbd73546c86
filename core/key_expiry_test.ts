import assert from "node:assert/strict";
import { KEY_EXPIRY_WARNING_DAYS, keyExpiryWarning } from "./key_expiry.ts";

const DAY = 24 * 60 * 60 * 1000;
const EXPIRES = Date.parse("2027-12-05T00:00:00Z");

Deno.test("keyExpiryWarning() is silent while the key has more than the warning days left", () => {
  assert.equal(keyExpiryWarning(EXPIRES, EXPIRES - (KEY_EXPIRY_WARNING_DAYS + 1) * DAY), undefined);
  assert.equal(keyExpiryWarning(EXPIRES, EXPIRES - 8 * DAY, 7), undefined);
});

Deno.test("keyExpiryWarning() counts down the days, then says the key expired", () => {
  assert.equal(
    keyExpiryWarning(EXPIRES, EXPIRES - 12 * DAY - 5),
    "The device key expires at 2027-12-05T00:00:00.000Z (in 12 days); rotate it before then " +
      "with fleet device rotate-key",
  );
  assert.match(keyExpiryWarning(EXPIRES, EXPIRES - DAY)!, /\(in 1 day\)/);
  assert.match(keyExpiryWarning(EXPIRES, EXPIRES - 1000)!, /\(in less than a day\)/);
  assert.match(keyExpiryWarning(EXPIRES, EXPIRES)!, /^The device key expired at 2027-12-05T00/);
});
