/** Command output for people and pipes (stdout); logs go through the logger to stderr. */
const encoder = new TextEncoder();

export function printLine(text: string): void {
  const data = encoder.encode(text + "\n");
  for (let offset = 0; offset < data.length;) {
    offset += Deno.stdout.writeSync(data.subarray(offset));
  }
}

/** Writes `data` to stdout, waiting while a slow terminal or pipe takes it. */
export function writeOut(data: Uint8Array): Promise<void> {
  return writeAll(Deno.stdout, data);
}

/** Writes a command's own stderr (`fleet exec`) to stderr, as {@link writeOut} does stdout. */
export function writeErr(data: Uint8Array): Promise<void> {
  return writeAll(Deno.stderr, data);
}

async function writeAll(file: typeof Deno.stdout, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await file.write(data.subarray(offset));
}

/**
 * {@link printLine} for what only a person watching needs (the progress of `fleet demo`). Once
 * their terminal is gone (closed: EIO; a closed pipe: BrokenPipe) the line is dropped, so the
 * work it narrates, a cleanup above all, goes on.
 */
export function narrate(text: string): void {
  try {
    printLine(text);
  } catch (error) {
    const gone = error instanceof Deno.errors.BrokenPipe ||
      (error as { code?: unknown }).code === "EIO";
    if (!gone) throw error;
  }
}
