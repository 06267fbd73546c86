/**
 * What `fleet apply -f` reads, as kubectl does: files of YAML or JSON documents separated by
 * `---`, a directory's `.yaml`, `.yml` and `.json` files (sorted by name, not recursive), `-`
 * for standard input; `-f` repeated. Each document keeps where it came from, so a refusal can
 * name its file and place.
 * @module
 */
import { join } from "node:path";
import YAML from "yaml";
import { UsageError } from "../core/errors.ts";

/** One object of a manifest, in the order given. */
export interface ManifestDocument {
  /** Where it came from, for messages: `web.yaml document 2` (`item 3` inside a List). */
  origin: string;
  /** The parsed object, or why the document is not valid YAML/JSON. */
  content: { value: unknown } | { problem: string };
}

/** Extensions of the files a directory contributes. */
const MANIFEST_EXTENSIONS = [".yaml", ".yml", ".json"];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The documents of one file's text; empty documents (`---` alone, only comments) are skipped,
 * and a `kind: List` (what `kubectl get -o yaml` prints for several objects) gives its items.
 * Documents are numbered from 1 as they appear, empty ones included, so the number is the one
 * a person counts. Pure.
 */
export function parseManifest(text: string, source: string): ManifestDocument[] {
  const documents: ManifestDocument[] = [];
  YAML.parseAllDocuments(text).forEach((document, i) => {
    const origin = `${source} document ${i + 1}`;
    const problem = document.errors[0];
    if (problem) {
      const reason = problem.message.split("\n")[0]?.replace(/:$/, "");
      documents.push({ origin, content: { problem: `not valid YAML or JSON: ${reason}` } });
      return;
    }
    const value: unknown = document.toJS();
    if (value === null || value === undefined) return;
    if (isRecord(value) && value.kind === "List" && Array.isArray(value.items)) {
      value.items.forEach((item, j) =>
        documents.push({ origin: `${origin} item ${j + 1}`, content: { value: item } })
      );
      return;
    }
    documents.push({ origin, content: { value } });
  });
  return documents;
}

/** The manifest files `path` names: itself, or a directory's manifest files by name. */
async function filesOf(path: string): Promise<string[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw new UsageError(`Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (!info.isDirectory) return [path];
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    if (entry.isDirectory) continue;
    if (MANIFEST_EXTENSIONS.some((extension) => entry.name.endsWith(extension))) {
      names.push(entry.name);
    }
  }
  return names.sort((a, b) => a < b ? -1 : a > b ? 1 : 0).map((name) => join(path, name));
}

/**
 * Reads every `-f` argument in order (`-` from `stdin`) into its documents. Everything is read
 * before anything is applied, so a missing file applies nothing.
 * @throws UsageError for a path that cannot be read, or when no document holds an object
 */
export async function readManifests(
  paths: readonly string[],
  stdin: () => Promise<string>,
): Promise<ManifestDocument[]> {
  const documents: ManifestDocument[] = [];
  for (const path of paths) {
    if (path === "-") {
      documents.push(...parseManifest(await stdin(), "stdin"));
      continue;
    }
    for (const file of await filesOf(path)) {
      let text: string;
      try {
        text = await Deno.readTextFile(file);
      } catch (error) {
        throw new UsageError(`Cannot read ${file}: ${(error as Error).message}`, { cause: error });
      }
      documents.push(...parseManifest(text, file));
    }
  }
  if (documents.length === 0) {
    throw new UsageError(
      `No objects to apply in ${paths.join(", ")}: the files are empty, or the directory has ` +
        `no ${MANIFEST_EXTENSIONS.join(", ")} files`,
    );
  }
  return documents;
}
