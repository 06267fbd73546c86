/**
 * A libvirt daemon, driven with `virsh` (the client every libvirt install has; the daemon's
 * RPC protocol has no maintained JavaScript client). Fleet VMs become domains there when a
 * daemon answers, so they show up in `virsh list` and virt-manager beside the host's others.
 */
import { VmBootError, VmHostError } from "../../vm/mod.ts";
import { findTool, runTool, tail, type ToolResult } from "./tools.ts";

/** The connection libvirt's own tools use unless told otherwise: the system daemon. */
export const SYSTEM_URI = "qemu:///system";

/** `LIBVIRT_DEFAULT_URI` when set (the variable libvirt's tools honour), else the system daemon. */
export function libvirtUri(): string {
  return Deno.env.get("LIBVIRT_DEFAULT_URI") || SYSTEM_URI;
}

export class Libvirt {
  readonly uri: string;

  private constructor(uri: string) {
    this.uri = uri;
  }

  /**
   * A client of the daemon at `uri`, or why there is none: virsh is missing or no daemon
   * answers there.
   */
  static async connect(uri: string): Promise<Libvirt | { unavailable: string }> {
    try {
      findTool("virsh");
    } catch (error) {
      return { unavailable: (error as Error).message };
    }
    const libvirt = new Libvirt(uri);
    const answer = await libvirt.#virsh(["uri"]);
    if (answer.code !== 0) {
      return { unavailable: `no libvirt daemon answers at ${uri}: ${tail(answer.stderr, 2)}` };
    }
    return libvirt;
  }

  /** The domain's state as virsh words it ("running", "shut off", ...), or undefined if none. */
  async state(domain: string): Promise<string | undefined> {
    const result = await this.#virsh(["domstate", domain]);
    if (result.code === 0) return result.stdout.trim();
    if (/failed to get domain|Domain not found/i.test(result.stderr)) return undefined;
    throw new VmHostError(
      `Cannot ask libvirt at ${this.uri} about domain ${domain}: ${tail(result.stderr, 2)}`,
    );
  }

  /** Defines the domain from its XML and starts it. */
  async defineAndStart(domain: string, xmlFile: string): Promise<void> {
    const defined = await this.#virsh(["define", xmlFile]);
    if (defined.code !== 0) {
      throw new VmBootError(
        `libvirt at ${this.uri} refused domain ${domain} (${xmlFile}): ${tail(defined.stderr, 3)}`,
      );
    }
    const started = await this.#virsh(["start", domain]);
    if (started.code !== 0) {
      const reason = tail(started.stderr, 3);
      await this.remove(domain);
      throw new VmBootError(`libvirt at ${this.uri} could not start ${domain}: ${reason}`);
    }
  }

  /**
   * Resets the running domain like a power cycle (libvirt sends qemu's `system_reset`): the
   * guest restarts without shutting down.
   */
  async reset(domain: string): Promise<void> {
    await this.#mustVirsh(["reset", domain], `reset ${domain}`);
  }

  /** Stops the domain at once if it runs (the guest's disks are copies) and undefines it. */
  async remove(domain: string): Promise<void> {
    const state = await this.state(domain);
    if (state === undefined) return;
    if (state !== "shut off") await this.#mustVirsh(["destroy", domain], `stop ${domain}`);
    // The UEFI variables file is the VM's own and goes with its directory.
    await this.#mustVirsh(["undefine", domain, "--keep-nvram"], `undefine ${domain}`);
  }

  async #mustVirsh(args: string[], what: string): Promise<void> {
    const result = await this.#virsh(args);
    if (result.code !== 0) {
      throw new VmHostError(`libvirt at ${this.uri} could not ${what}: ${tail(result.stderr, 2)}`);
    }
  }

  #virsh(args: string[]): Promise<ToolResult> {
    return runTool("virsh", ["--quiet", "--connect", this.uri, ...args]);
  }
}
