/**
 * A `fleet` process a benchmark measures (`agent run`, `operator run`): a child of its own, so
 * its RSS and CPU in /proc are its own, with its log (stderr) read line by line.
 */

export interface BenchChild {
  readonly child: Deno.ChildProcess;
  /** SIGTERM; resolves once it has exited and its last line is read. */
  stop(): Promise<void>;
}

/**
 * Runs `deno <args>` (its environment plus `env`), handing each line it logs to `onLine`.
 */
export function spawnLogged(
  args: string[],
  onLine: (line: string) => void,
  env: Record<string, string> = {},
): BenchChild {
  const child = new Deno.Command(Deno.execPath(), { args, env, stdout: "null", stderr: "piped" })
    .spawn();
  const reading = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  })();
  return {
    child,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      await child.status;
      await reading;
    },
  };
}
