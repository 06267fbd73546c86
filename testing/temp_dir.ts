/** A temporary folder for a test, removed with everything in it when disposed. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/** `await using dir = await tempDir("fleet-x-")`: the folder cannot outlive the test. */
export async function tempDir(prefix: string): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}
