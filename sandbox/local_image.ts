/**
 * A tiny HTTP image built locally (no registry is reachable on these machines) from
 * Debian's static busybox. Tests and `fleet demo` run it; it serves `fleet-test <tag>\n`
 * on port 80.
 */

import type { PodmanClient } from "../adapters/podman/client.ts";

const BUSYBOX = "/bin/busybox";

/** Repository part of every test image reference. */
export const TEST_IMAGE_REPOSITORY = "localhost/fleet-test";

// httpd as PID 1 ignores SIGTERM (the kernel drops signals PID 1 has no handler for), so
// every stop would wait for the full timeout and end in SIGKILL. A shell that traps TERM
// and exits makes stops immediate; its exit takes httpd down with the PID namespace.
const CONTAINERFILE = `FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY index.html /www/index.html
CMD ["/bin/sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"]
`;

/**
 * Label carrying a digest of the recipe: an image left under the same tag by an older
 * recipe (or built by hand) is rebuilt instead of silently reused.
 */
const RECIPE_LABEL = "fleet.nationtech.io/test-image-recipe";

/**
 * Builds `localhost/fleet-test:<tag>` unless local storage already has it from this same
 * recipe.
 *
 * @param tag image tag; also the page's content (`fleet-test <tag>\n`), so versions differ.
 * @returns the full image reference.
 * @throws {Error} when `/bin/busybox` is missing or not static (install `busybox-static`).
 * @throws {PodmanError} when the build fails.
 */
export async function ensureTestImage(client: PodmanClient, tag: string): Promise<string> {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
    throw new TypeError(`Invalid test image tag "${tag}": use letters, digits, '_', '.', '-'`);
  }
  const ref = `${TEST_IMAGE_REPOSITORY}:${tag}`;
  const recipe = await digest(CONTAINERFILE);
  const existing = await client.inspectImage(ref);
  if (existing?.labels[RECIPE_LABEL] === recipe) return ref;

  await client.buildImage({
    tags: [ref],
    containerfile: `${CONTAINERFILE}LABEL ${RECIPE_LABEL}="${recipe}"\n`,
    files: { "busybox": await readStaticBusybox(), "index.html": `fleet-test ${tag}\n` },
    fileModes: { "busybox": 0o755 },
  });
  return ref;
}

async function digest(text: string): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(hash).subarray(0, 8), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function readStaticBusybox(): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(BUSYBOX);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot build the test image: "${BUSYBOX}" is missing; install it with ` +
          "`apt-get install busybox-static`",
        { cause: error },
      );
    }
    throw error;
  }
  // The image has no libc, so a dynamically linked busybox (Debian's `busybox` package)
  // would fail at the first RUN with a confusing "no such file or directory".
  if (hasInterpreter(bytes)) {
    throw new Error(
      `Cannot build the test image: "${BUSYBOX}" is dynamically linked; install ` +
        "`busybox-static` instead of `busybox`",
    );
  }
  return bytes;
}

/** True for an ELF executable with a PT_INTERP (dynamic loader) program header. */
function hasInterpreter(elf: Uint8Array): boolean {
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const isElf = elf.length > 64 && view.getUint32(0) === 0x7f454c46;
  if (!isElf) return false;
  const is64 = elf[4] === 2;
  const little = elf[5] === 1;
  const phoff = is64 ? Number(view.getBigUint64(0x20, little)) : view.getUint32(0x1c, little);
  const phentsize = view.getUint16(is64 ? 0x36 : 0x2a, little);
  const phnum = view.getUint16(is64 ? 0x38 : 0x2c, little);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > elf.length) break;
    if (view.getUint32(at, little) === 3 /* PT_INTERP */) return true;
  }
  return false;
}
