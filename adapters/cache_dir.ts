/**
 * Where slow build outputs live between runs, outside any clone: `$XDG_CACHE_HOME/fleet`,
 * else `~/.cache/fleet`, one folder per thing and version, so every checkout on a machine
 * (CI's fresh clones included) reuses them and a new machine, or a new version, rebuilds:
 *
 * - `nats-server-<version>/` and `kube-<version>-etcd-<version>/`: the test servers, built
 *   by `scripts/install.sh` and `scripts/build-kube-test-bins.sh` (which compute the same
 *   paths in shell);
 * - `deno-runtime-<version>/<arch>/deno`: the runtimes the packages ship;
 * - `vm-images/<arch>-<suite>-<recipe hash>/`: `fleet vm image build`'s base images.
 *
 * Deleting any of them costs only the rebuild.
 */

/**
 * `$XDG_CACHE_HOME/fleet` when set (as the scripts read it), else `$HOME/.cache/fleet`.
 * @throws {Error} when neither variable is set.
 */
export function fleetCacheDir(): string {
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/fleet`;
  const home = Deno.env.get("HOME");
  if (!home) {
    throw new Error("Cannot find the cache folder: neither XDG_CACHE_HOME nor HOME is set");
  }
  return `${home}/.cache/fleet`;
}
