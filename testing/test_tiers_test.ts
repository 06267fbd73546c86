/**
 * The test tiers of deno.json (`test:unit`, `test:integration`, `test:e2e`) hold every test
 * file exactly once, so a new file cannot be forgotten, and `deno task test` runs them all.
 * A tier lists folders (ending in `/`, every test file under them) and files.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const TIERS = ["test:unit", "test:integration", "test:e2e"] as const;
/** The names `deno test` picks up by default. */
const TEST_FILE = /(^|[_.])test\.m?[jt]sx?$/;
/** Folders whose modules start the test servers (`export function startXxx`). */
const FIXTURE_DIRS = ["testing", "sandbox", "e2e"];

interface DenoJson {
  tasks: Record<string, string | { command: string }>;
  exclude?: string[];
}

const denoJson: DenoJson = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));

/** The path arguments of a `deno test ...` task. */
function taskPaths(task: string): string[] {
  const value = denoJson.tasks[task];
  assert.ok(value !== undefined, `deno.json has no task "${task}"`);
  const command = typeof value === "string" ? value : value.command;
  const words = command.trim().split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "test"], `task ${task} is not "deno test ..."`);
  return words.slice(2).filter((w) => !w.startsWith("-"));
}

/** Every test file of the project, relative to its root, as `deno test` finds them. */
async function allTestFiles(dir = ROOT, rel = ""): Promise<string[]> {
  const skipped = new Set(
    ["node_modules", ...(denoJson.exclude ?? [])].map((p) => p.replace(/\/$/, "")),
  );
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory) {
      if (entry.name.startsWith(".") || skipped.has(path)) continue;
      found.push(...await allTestFiles(`${dir}/${entry.name}`, path));
    } else if (entry.isFile && TEST_FILE.test(entry.name)) {
      found.push(path);
    }
  }
  return found.sort();
}

const files = await allTestFiles();

/** The `start...` functions the fixtures export: each starts a process or a server. */
async function fixtureStarters(): Promise<string[]> {
  const names = new Set<string>();
  for (const dir of FIXTURE_DIRS) {
    for await (const entry of Deno.readDir(`${ROOT}/${dir}`)) {
      if (!entry.isFile || !entry.name.endsWith(".ts") || TEST_FILE.test(entry.name)) continue;
      const text = await Deno.readTextFile(`${ROOT}/${dir}/${entry.name}`);
      for (const m of text.matchAll(/^export (?:async )?function (start\w+)/gm)) names.add(m[1]!);
    }
  }
  assert.ok(names.size > 0, `no start... function exported from ${FIXTURE_DIRS.join(", ")}`);
  return [...names];
}

/**
 * What a unit test never does: start a process or a server (a fixture, a child process, a
 * listener) or connect to one. A file that mentions one of these without doing it belongs in
 * test:integration all the same.
 */
const STARTS_SOMETHING = new RegExp(
  [
    String.raw`\bDeno\.(Command|serve|listen|listenTls|connect|connectTls)\b`,
    String.raw`\b(runTool|mustRun)\(`,
    String.raw`\bnew Worker\(`,
    String.raw`\bLocalFleet\.start\(`,
    String.raw`\b(${(await fixtureStarters()).join("|")})\(`,
  ].join("|"),
);

/** The files each tier runs; a listed path that is no test file or folder fails here. */
function tierFiles(task: string): string[] {
  return taskPaths(task).flatMap((path) => {
    if (path.endsWith("/")) {
      const under = files.filter((f) => f.startsWith(path));
      assert.ok(under.length > 0, `${task} lists ${path}, which holds no test file`);
      return under;
    }
    assert.ok(files.includes(path), `${task} lists ${path}, which is not a test file`);
    return [path];
  });
}

Deno.test("every test file is in exactly one tier of deno.json", () => {
  const tiersOf = new Map(files.map((f) => [f, [] as string[]]));
  for (const tier of TIERS) {
    for (const file of tierFiles(tier)) tiersOf.get(file)!.push(tier);
  }
  const problems = [...tiersOf].flatMap(([file, tiers]) =>
    tiers.length === 1 ? [] : [
      tiers.length === 0
        ? `${file} is in no tier: add it to one of ${TIERS.join(", ")} in deno.json`
        : `${file} is in ${tiers.join(" and ")}: keep it in one`,
    ]
  );
  assert.deepEqual(problems, []);
});

Deno.test("deno task test runs every test file: no paths of its own", () => {
  assert.deepEqual(taskPaths("test"), []);
});

Deno.test("a unit test starts no process or server and connects to none", async () => {
  const offenders: string[] = [];
  for (const file of tierFiles("test:unit")) {
    const match = STARTS_SOMETHING.exec(await Deno.readTextFile(`${ROOT}/${file}`));
    if (match) offenders.push(`${file} (${match[0]}): move it to test:integration`);
  }
  assert.deepEqual(offenders, []);
});
