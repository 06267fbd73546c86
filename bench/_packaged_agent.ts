/**
 * The agent as the package runs it, for the benchmarks that measure its process: the bundle
 * split at main.ts's dynamic imports, the unit's `deno run` flags, Deno permissions and
 * environment, and the unit's cache warm-up before the first start.
 */
import { fileURLToPath } from "node:url";
import {
  AGENT_ENVIRONMENT,
  AGENT_WARM_UP_ARGS,
  type AgentPaths,
  agentRunArgs,
} from "../packaging/deb.ts";
import type { ProcSample } from "./_proc.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

/** How to start a program: `deno` arguments before its own (`agent run ...`), and environment. */
export interface BenchProgram {
  args: string[];
  env: Record<string, string>;
}

/** `deno run -A main.ts`, unbundled, for comparison. */
export const SOURCE_PROGRAM: BenchProgram = { args: ["run", "-A", MAIN], env: {} };

/**
 * Bundles main.ts into `dir`/app and warms a Deno cache in `dir` for it, as the unit does
 * before it starts the agent (ExecStartPre). `paths`: where the agent writes, for its Deno
 * permissions.
 */
export async function packagedAgent(dir: string, paths: AgentPaths): Promise<BenchProgram> {
  const bundled = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--minify", "--code-splitting", "--outdir", `${dir}/app`, MAIN],
  }).output();
  if (!bundled.success) throw new Error(new TextDecoder().decode(bundled.stderr));
  const args = agentRunArgs(paths, `${dir}/app/main.js`);
  const env = { ...AGENT_ENVIRONMENT, DENO_DIR: `${dir}/deno-dir` };
  const warmUp = await new Deno.Command(Deno.execPath(), {
    args: [...args, ...AGENT_WARM_UP_ARGS],
    env,
    stdout: "null",
  }).output();
  if (!warmUp.success) throw new Error(new TextDecoder().decode(warmUp.stderr));
  return { args, env };
}

/** The figures of a sample: resident, file-backed and anonymous memory. */
export function memoryFigures(sample: ProcSample): string {
  const mb = (kb: number) => (kb / 1024).toFixed(1);
  return `rss=${mb(sample.rssKb)}MB (file-backed ${mb(sample.rssFileKb)}MB, anonymous ${
    mb(sample.rssAnonKb)
  }MB)`;
}
