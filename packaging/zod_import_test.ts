import * as assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * `import { z } from "zod"` makes the bundler keep every locale zod ships (the agent's part of
 * the bundle was 915 KB instead of 558 KB, and an idle agent 2 MB larger); the namespace
 * import lets it keep only what the code uses.
 */
Deno.test("zod is imported as a namespace everywhere, so the bundle leaves its locales out", async () => {
  const listed = await new Deno.Command("git", { args: ["ls-files", "*.ts"], cwd: ROOT }).output();
  assert.ok(listed.success, "git ls-files ran");
  const files = new TextDecoder().decode(listed.stdout).split("\n").filter((f) => f !== "");
  assert.ok(files.length > 100, `found ${files.length} files`);
  const named = /^import (type )?\{[^}]*\} from "zod";/m;
  const offenders = [];
  for (const file of files) {
    if (named.test(await Deno.readTextFile(`${ROOT}/${file}`))) offenders.push(file);
  }
  assert.deepEqual(offenders, [], 'write import * as z from "zod" in these files');
});
