/**
 * Tells a config enroll wrote, untouched since, from one someone changed on the device: the
 * first line carries the SHA-256 of the rest. Enroll replaces its own untouched config freely
 * (new labels simply apply) and asks before replacing anything else.
 */

const STAMP = /^# Written by fleet device enroll; content sha256 ([0-9a-f]{64})\n/;

/** Hex SHA-256 of text or bytes (also what identifies an installed package build). */
export async function sha256(data: string | Uint8Array<ArrayBuffer>): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `body` with its stamp line first. */
export async function stampConfig(body: string): Promise<string> {
  return `# Written by fleet device enroll; content sha256 ${await sha256(body)}\n${body}`;
}

/** True when `text` is a stamped config whose content still matches its stamp. */
export async function isUntouched(text: string): Promise<boolean> {
  const m = STAMP.exec(text);
  return m !== null && m[1] === await sha256(text.slice(m[0].length));
}

/**
 * `text` with every `password = "…"` value replaced by asterisks, for a diff shown to a person
 * (a terminal, a screen share, a CI log): the password itself is never printed.
 */
export function maskSecrets(text: string): string {
  return text.replace(
    /(\bpassword\s*=\s*)("(?:[^"\\\n]|\\.)*"|'[^'\n]*')/g,
    '$1"********"',
  );
}
