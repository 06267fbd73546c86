/** Questions to the person at the keyboard; undefined when there is no terminal to ask on. */
import { printLine } from "../output.ts";

const encoder = new TextEncoder();

function write(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** Reads one line from the terminal; without echo when `secret`. */
async function readLine(question: string, secret: boolean): Promise<string | undefined> {
  if (!Deno.stdin.isTerminal()) return undefined;
  write(question);
  if (secret) Deno.stdin.setRaw(true);
  const chars: number[] = [];
  const buf = new Uint8Array(1);
  try {
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) return undefined;
      const c = buf[0]!;
      if (c === 3) return undefined; // Ctrl-C in raw mode
      if (c === 10 || c === 13) break;
      if (c === 127 || c === 8) chars.pop();
      else chars.push(c);
    }
  } finally {
    if (secret) {
      Deno.stdin.setRaw(false);
      write("\n");
    }
  }
  return new TextDecoder().decode(new Uint8Array(chars));
}

/** A password prompt that does not echo. */
export function askSecret(question: string): Promise<string | undefined> {
  return readLine(question, true);
}

/** Shows `text`, then asks yes/no; no terminal = no. */
export async function askYesNo(text: string, question: string): Promise<boolean> {
  if (!Deno.stdin.isTerminal()) return false;
  printLine(text);
  const answer = await readLine(`${question} [y/N] `, false);
  return /^y(es)?$/i.test(answer?.trim() ?? "");
}
