/** Running the host tools the VM work needs, with errors that say which Debian package is missing. */
import { VmHostError } from "../../vm/mod.ts";
import { findExecutable } from "../process.ts";

/** The Debian package that provides each tool (what `scripts/install.sh test` installs). */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  "qemu-system-x86_64": "qemu-system-x86",
  "qemu-system-aarch64": "qemu-system-arm",
  "qemu-img": "qemu-utils",
  "debootstrap": "debootstrap",
  "mkfs.vfat": "dosfstools",
  "mcopy": "mtools",
  "mkfs.ext4": "e2fsprogs",
  "ssh": "openssh-client",
  "ssh-keygen": "openssh-client",
  "chroot": "coreutils",
  "virsh": "libvirt-clients",
  "libvirtd": "libvirt-daemon",
  "virtlogd": "libvirt-daemon",
};

const SEARCH_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** The tool's full path. @throws {VmHostError} naming the package to install. */
export function findTool(name: string): string {
  const path = findExecutable(name, SEARCH_PATH);
  if (path !== undefined) return path;
  const pkg = TOOL_PACKAGES[name];
  throw new VmHostError(
    `"${name}" is not installed${
      pkg ? `: install the Debian package ${pkg} (bash scripts/install.sh test does)` : ""
    }`,
  );
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool to completion and collects its output (no shell). */
export async function runTool(
  name: string,
  args: readonly string[],
  options: { env?: Record<string, string>; stdin?: "null" | "inherit" } = {},
): Promise<ToolResult> {
  const output = await new Deno.Command(findTool(name), {
    args: [...args],
    stdin: options.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.env ? { env: options.env } : {}),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The last lines of a tool's output, for an error message. */
export function tail(text: string, lines = 5): string {
  return text.trim().split("\n").slice(-lines).join(" | ");
}

/** Runs a tool and throws `makeError(reason)` when it exits non-zero. */
export async function mustRun(
  name: string,
  args: readonly string[],
  makeError: (reason: string) => Error,
  options: { env?: Record<string, string> } = {},
): Promise<ToolResult> {
  const result = await runTool(name, args, options);
  if (result.code !== 0) {
    throw makeError(`${name} exited with ${result.code}: ${tail(result.stderr || result.stdout)}`);
  }
  return result;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
