import * as assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { droppableMappings } from "./code_pages.ts";
import { agentDenoPermissions } from "../packaging/deb.ts";
import { procSample } from "../bench/_proc.ts";

const MODULE = new URL("./code_pages.ts", import.meta.url).href;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** An smaps entry: `fields` are kB values, e.g. `{ Rss: 8, Anonymous: 0 }`. */
function entry(header: string, fields: Record<string, number>, flags = "rd mr mw me"): string {
  return [
    header,
    ...Object.entries(fields).map(([name, kb]) =>
      `${name}:${" ".repeat(16 - name.length)}${kb} kB`
    ),
    `VmFlags: ${flags} `,
  ].join("\n");
}

Deno.test("droppableMappings() keeps only private, read-only file mappings with no page of their own", () => {
  const smaps = [
    entry("5595244e3000-559526068000 r--p 00000000 fe:00 7798789   /usr/lib/fleet/deno", {
      Rss: 12848,
      Anonymous: 0,
    }),
    entry("5595262de000-559529fef000 r-xp 01b85000 fe:00 7798789   /usr/lib/fleet/deno", {
      Rss: 20392,
      Anonymous: 0,
    }),
    // Written at start (.data): dropping it would lose what the process wrote.
    entry("559529fef000-55952a248000 rw-p 05895000 fe:00 7798789   /usr/lib/fleet/deno", {
      Rss: 2404,
      Anonymous: 2404,
    }),
    // Relocated, then made read-only (RELRO): its pages are the process's own copies.
    entry(
      "7ffa2d1ed000-7ffa2d1f1000 r--p 001cf000 fe:00 326269   /usr/lib/x86_64-linux-gnu/libc.so.6",
      {
        Rss: 16,
        Anonymous: 16,
      },
    ),
    entry(
      "7ffa2d19a000-7ffa2d1ed000 r-xp 00026000 fe:00 326269   /usr/lib/x86_64-linux-gnu/libc.so.6",
      {
        Rss: 340,
        Anonymous: 0,
      },
    ),
    // Shared (a cache database), anonymous, the heap, the vDSO, locked, nothing resident.
    entry(
      "7fb7a0164000-7fb7a0165000 r--s 00000000 fe:00 9980625   /var/cache/fleet-agent/dep_analysis_cache_v2",
      {
        Rss: 4,
        Anonymous: 0,
      },
    ),
    entry("7fb796913000-7fb79691b000 r--p 00000000 00:00 0 ", { Rss: 32, Anonymous: 32 }),
    entry("55952b000000-55952b100000 rw-p 00000000 00:00 0   [heap]", { Rss: 900, Anonymous: 900 }),
    entry("7ffd1a3f2000-7ffd1a3f4000 r-xp 00000000 00:00 0   [vdso]", { Rss: 8, Anonymous: 0 }),
    entry(
      "7ffa2d200000-7ffa2d210000 r-xp 00000000 fe:00 5   /usr/lib/x86_64-linux-gnu/libm.so.6",
      { Rss: 64, Anonymous: 0 },
      "rd ex mr mw me lo",
    ),
    entry("7ffa2d300000-7ffa2d310000 r-xp 00000000 fe:00 6   /usr/lib/x86_64-linux-gnu/libz.so.1", {
      Rss: 0,
      Anonymous: 0,
    }),
  ].join("\n");
  assert.deepEqual(droppableMappings(smaps), [
    {
      start: 0x5595244e3000n,
      end: 0x559526068000n,
      rss: 12848 * 1024,
      path: "/usr/lib/fleet/deno",
    },
    {
      start: 0x5595262de000n,
      end: 0x559529fef000n,
      rss: 20392 * 1024,
      path: "/usr/lib/fleet/deno",
    },
    {
      start: 0x7ffa2d19a000n,
      end: 0x7ffa2d1ed000n,
      rss: 340 * 1024,
      path: "/usr/lib/x86_64-linux-gnu/libc.so.6",
    },
  ]);
  assert.deepEqual(droppableMappings(""), []);
});

/**
 * Runs a Deno child with `permissions` that gives back its code pages when told to on stdin,
 * then does more work. Returns what it printed after the release and its file-backed
 * resident kB just before and just after.
 */
async function releaseInChild(dir: string, permissions: string[]) {
  const script = `${dir}/release.ts`;
  await Deno.writeTextFile(
    script,
    `import { releaseCodePages } from ${JSON.stringify(MODULE)};\n` +
      `const input = Deno.stdin.readable.getReader();\n` +
      `console.log("ready");\n` +
      `await input.read();\n` +
      `try { console.log(releaseCodePages()); } catch (e) { console.log(\`\${e.name}: \${e.message}\`); }\n` +
      `console.log(JSON.stringify([3, 1, 2].toSorted()));\n` +
      `await input.read();\n`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, script],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stdin = child.stdin.getWriter();
  let buffered = "";
  /** The child's next line of output. */
  const next = async (): Promise<string | undefined> => {
    while (!buffered.includes("\n")) {
      const { value, done } = await output.read();
      if (done) return undefined;
      buffered += value;
    }
    const [line, ...rest] = buffered.split("\n");
    buffered = rest.join("\n");
    return line;
  };
  try {
    assert.equal(await next(), "ready");
    const beforeKb = procSample(child.pid)!.rssFileKb;
    await stdin.write(new Uint8Array([10]));
    const released = await next();
    const afterKb = procSample(child.pid)!.rssFileKb;
    return { released, beforeKb, afterKb, after: await next() };
  } finally {
    await stdin.close();
    await output.cancel();
    assert.ok((await child.status).success, "the child exits cleanly");
  }
}

Deno.test("releaseCodePages() gives back the code pages of a process with the agent's permissions, which then runs on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-code-pages-" });
  try {
    const permissions = agentDenoPermissions({ stateDir: dir, podmanSocketDir: dir });
    const result = await releaseInChild(dir, permissions);
    assert.ok(Number(result.released) > 1024 * 1024, `released ${result.released} bytes`);
    assert.ok(
      result.afterKb < result.beforeKb,
      `file-backed resident ${result.beforeKb} kB → ${result.afterKb} kB`,
    );
    assert.equal(result.after, "[1,2,3]", "the process runs on");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("releaseCodePages() without --allow-ffi for the C library names the library and the flag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-code-pages-" });
  try {
    const result = await releaseInChild(dir, ["--allow-read"]);
    assert.match(
      result.released ?? "",
      /^CodePagesError: cannot call \/(usr\/)?lib\/\w+-linux-gnu\/libc\.so\.6: .*--allow-ffi/,
    );
    assert.equal(result.after, "[1,2,3]");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
