/** Command output for people and pipes (stdout); logs go through the logger to stderr. */
const encoder = new TextEncoder();

export function printLine(text: string): void {
  const data = encoder.encode(text + "\n");
  for (let offset = 0; offset < data.length;) {
    offset += Deno.stdout.writeSync(data.subarray(offset));
  }
}
