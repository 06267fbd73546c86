import assert from "node:assert/strict";
import { denoRuntime, pinnedSha512, RUNTIME_PINS_PATH, sha512File } from "./deno_runtime.ts";
import { PackagingError } from "./deb.ts";

/** A cache root holding `text` as the cached runtime of `version` for amd64. */
async function cacheWith(version: string, text: string): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "fleet-runtime-test-" });
  await Deno.mkdir(`${root}/deno-runtime-${version}/amd64`, { recursive: true });
  await Deno.writeTextFile(`${root}/deno-runtime-${version}/amd64/deno`, text);
  return root;
}

Deno.test("both architectures of the packaged Deno version have a SHA-512 pinned", async () => {
  for (const arch of ["amd64", "arm64"] as const) {
    assert.match(await pinnedSha512(arch, "2.9.5"), /^[0-9a-f]{128}$/);
  }
  await assert.rejects(
    pinnedSha512("arm64", "2.0.0"),
    (e: Error) =>
      e instanceof PackagingError &&
      e.message.includes(
        `No SHA-512 is pinned for the Deno 2.0.0 runtime on arm64 in ${RUNTIME_PINS_PATH}`,
      ),
  );
});

Deno.test("a cached runtime is used only when it has the pinned SHA-512", async () => {
  const root = await cacheWith("9.9.9", "the real runtime\n");
  try {
    const exe = `${root}/deno-runtime-9.9.9/amd64/deno`;
    const pins = `${root}/pins.sha512`;
    await Deno.writeTextFile(pins, `${await sha512File(exe)}  9.9.9/amd64/deno\n`);
    assert.equal(await denoRuntime("amd64", "9.9.9", root, pins), exe);

    // Tampered after it was fetched: refused, and the message says what to do.
    await Deno.writeTextFile(exe, "the real runtime, with a backdoor\n");
    await assert.rejects(
      denoRuntime("amd64", "9.9.9", root, pins),
      (e: Error) =>
        e instanceof PackagingError &&
        e.message.startsWith(`The cached Deno 9.9.9 runtime for amd64 (${exe}) has SHA-512 `) &&
        e.message.includes(`pinned in ${pins}: refusing to package it`) &&
        e.message.includes("delete it to fetch it again from npm"),
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("install.sh holds its Deno to the same pins and runs no npm package's scripts", async () => {
  const script = await Deno.readTextFile(new URL("../scripts/install.sh", import.meta.url));
  assert.match(script, /packaging\/deno-runtime\.sha512/);
  assert.match(script, /sha512sum --check/);
  const commands = script.split("\n").filter((l) => !l.trimStart().startsWith("#"));
  const npmInstalls = commands.filter((l) => /\bnpm (install|i|ci|pack)\b/.test(l));
  assert.ok(npmInstalls.length > 0, "Deno comes from npm");
  for (const line of npmInstalls) assert.match(line, /--ignore-scripts/, line);
  assert.doesNotMatch(commands.join("\n"), /--allow-scripts|\bnpx\b/);
});
