import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError } from "../core/errors.ts";
import { tempDir } from "../testing/temp_dir.ts";
import { type ManifestDocument, parseManifest, readManifests } from "./manifests.ts";

const noStdin = () => Promise.reject(new Error("stdin was not given"));

/** Each document as `origin => value` or `origin !! problem`, to compare in one assertion. */
function summary(documents: ManifestDocument[]): string[] {
  return documents.map(({ origin, content }) =>
    "value" in content
      ? `${origin} => ${JSON.stringify(content.value)}`
      : `${origin} !! ${content.problem}`
  );
}

Deno.test("parseManifest() gives each YAML document with its number, skipping empty ones", () => {
  const text = "---\n# a comment\na: 1\n---\n---\n# only a comment\n---\nb: 2\n...\n";
  assert.deepEqual(summary(parseManifest(text, "web.yaml")), [
    `web.yaml document 1 => {"a":1}`,
    `web.yaml document 4 => {"b":2}`,
  ]);
  assert.deepEqual(parseManifest("", "empty.yaml"), []);
});

Deno.test("parseManifest() reads JSON, and the items of a kubectl List", () => {
  assert.deepEqual(summary(parseManifest(`{"kind": "Deployment"}`, "web.json")), [
    `web.json document 1 => {"kind":"Deployment"}`,
  ]);
  const list = "apiVersion: v1\nkind: List\nitems:\n  - {a: 1}\n  - {b: 2}\n---\nc: 3\n";
  assert.deepEqual(summary(parseManifest(list, "all.yaml")), [
    `all.yaml document 1 item 1 => {"a":1}`,
    `all.yaml document 1 item 2 => {"b":2}`,
    `all.yaml document 2 => {"c":3}`,
  ]);
});

Deno.test("parseManifest() names a document that is not YAML, and keeps the others", () => {
  const documents = parseManifest("a: 1\n---\nb: [\n---\nc: 3\n", "web.yaml");
  assert.equal(documents[0]?.origin, "web.yaml document 1");
  const broken = documents.find((d) => d.origin === "web.yaml document 2");
  assert.ok(broken && "problem" in broken.content, JSON.stringify(documents));
  assert.match(broken.content.problem, /^not valid YAML or JSON: /);
  assert.doesNotMatch(broken.content.problem, /:$/);
  // Duplicate keys are refused too, as kubectl's strict validation does.
  const duplicate = parseManifest("a: 1\na: 2\n", "dup.yaml")[0];
  assert.ok(duplicate && "problem" in duplicate.content);
});

Deno.test("readManifests() reads a directory's .yaml, .yml and .json files by name, not its subfolders", async () => {
  await using tmp = await tempDir("fleet-manifests-");
  const dir = tmp.path;
  await Deno.writeTextFile(join(dir, "b.yml"), "b: 1\n");
  await Deno.writeTextFile(join(dir, "a.yaml"), "a: 1\n---\na: 2\n");
  await Deno.writeTextFile(join(dir, "c.json"), `{"c": 1}`);
  await Deno.writeTextFile(join(dir, "README.md"), "# not a manifest\n");
  await Deno.mkdir(join(dir, "sub.yaml"));
  await Deno.writeTextFile(join(dir, "sub.yaml", "d.yaml"), "d: 1\n");
  assert.deepEqual(summary(await readManifests([dir], noStdin)), [
    `${join(dir, "a.yaml")} document 1 => {"a":1}`,
    `${join(dir, "a.yaml")} document 2 => {"a":2}`,
    `${join(dir, "b.yml")} document 1 => {"b":1}`,
    `${join(dir, "c.json")} document 1 => {"c":1}`,
  ]);
});

Deno.test("readManifests() reads each -f in order, '-' from stdin", async () => {
  await using tmp = await tempDir("fleet-manifests-");
  const dir = tmp.path;
  const file = join(dir, "x.yaml");
  await Deno.writeTextFile(file, "x: 1\n");
  assert.deepEqual(
    summary(await readManifests([file, "-"], () => Promise.resolve("y: 1\n---\ny: 2\n"))),
    [
      `${file} document 1 => {"x":1}`,
      `stdin document 1 => {"y":1}`,
      `stdin document 2 => {"y":2}`,
    ],
  );
});

Deno.test("readManifests() refuses a missing path and an input without objects", async () => {
  await using tmp = await tempDir("fleet-manifests-");
  const dir = tmp.path;
  const missing = join(dir, "missing.yaml");
  await assert.rejects(readManifests([missing], noStdin), (error: unknown) => {
    assert.ok(error instanceof UsageError);
    assert.match(error.message, new RegExp(`^Cannot read ${missing}: `));
    return true;
  });
  await Deno.writeTextFile(join(dir, "empty.yaml"), "---\n# nothing\n");
  for (const paths of [[dir], [join(dir, "empty.yaml")]]) {
    await assert.rejects(readManifests(paths, noStdin), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /^No objects to apply in /);
      return true;
    });
  }
});
