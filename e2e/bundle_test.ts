/**
 * The bundled program as packages ship it (split at main.ts's dynamic imports) runs on its
 * own, with no node_modules or cache.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

Deno.test("deno bundle --code-splitting output runs from an empty folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fleet-bundle-" });
  try {
    const bundle = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--minify",
        "--code-splitting",
        "--outdir",
        `${dir}/app`,
        `${ROOT}/main.ts`,
      ],
      cwd: ROOT,
    }).output();
    assert.equal(bundle.code, 0, new TextDecoder().decode(bundle.stderr));
    const run = (...args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-config", `${dir}/app/main.js`, ...args],
        cwd: dir,
        env: { DENO_DIR: `${dir}/deno-dir` },
      }).output();
    const version = await run("--version");
    assert.equal(version.code, 0);
    const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`));
    assert.equal(new TextDecoder().decode(version.stdout).trim(), denoJson.version);
    const printed = await run(
      "apply",
      "deployment",
      "--name",
      "web",
      "--image",
      "localhost/web:1",
      "--selector",
      "site=lab",
      "--print",
    );
    assert.equal(printed.code, 0, new TextDecoder().decode(printed.stderr));
    assert.match(new TextDecoder().decode(printed.stdout), /kind: Deployment/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
