/**
 * When a device's key nears the end of its life (keys expire at the identity provider, see
 * `fleet device enroll --key-lifetime`), the agent says so in its log, early enough for a
 * person to run `fleet device rotate-key`. Pure: the dates come in, the sentence goes out.
 */

/** Days before expiry the warnings start. */
export const KEY_EXPIRY_WARNING_DAYS = 30;

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * @param expiresAt when the key expires (epoch ms)
 * @param now epoch ms
 * @returns the warning to log, or undefined while the key has more than `warningDays` left
 */
export function keyExpiryWarning(
  expiresAt: number,
  now: number,
  warningDays: number = KEY_EXPIRY_WARNING_DAYS,
): string | undefined {
  const left = expiresAt - now;
  if (left > warningDays * DAY_MS) return undefined;
  const at = new Date(expiresAt).toISOString();
  if (left <= 0) {
    return `The device key expired at ${at}: the identity provider refuses it, so the agent ` +
      `cannot sign in to NATS; give the device a new key with fleet device rotate-key`;
  }
  const days = Math.floor(left / DAY_MS);
  return `The device key expires at ${at} (${
    days === 0 ? "in less than a day" : `in ${days} day${days === 1 ? "" : "s"}`
  }); rotate it before then with fleet device rotate-key`;
}
