import assert from "node:assert/strict";
import { fleetCacheDir } from "./cache_dir.ts";
import { defaultImageCacheDir } from "./vm/image_build.ts";

/** Runs `fn` with these environment variables set (undefined: unset), then restores them. */
function withEnv(vars: Record<string, string | undefined>, fn: () => void): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  };
  apply(vars);
  try {
    fn();
  } finally {
    apply(saved);
  }
}

const NO_SUDO = { SUDO_USER: undefined, SUDO_UID: undefined, SUDO_GID: undefined };

Deno.test("fleetCacheDir() is $XDG_CACHE_HOME/fleet, else ~/.cache/fleet", () => {
  withEnv({ XDG_CACHE_HOME: "/x/cache", HOME: "/home/a" }, () => {
    assert.equal(fleetCacheDir(), "/x/cache/fleet");
  });
  withEnv({ XDG_CACHE_HOME: undefined, HOME: "/home/a" }, () => {
    assert.equal(fleetCacheDir(), "/home/a/.cache/fleet");
  });
  withEnv({ XDG_CACHE_HOME: undefined, HOME: undefined }, () => {
    assert.throws(() => fleetCacheDir(), /neither XDG_CACHE_HOME nor HOME is set/);
  });
});

Deno.test("defaultImageCacheDir() is vm-images in the cache, the invoking user's under sudo", () => {
  withEnv({ XDG_CACHE_HOME: "/x/cache", ...NO_SUDO }, () => {
    assert.equal(defaultImageCacheDir(), "/x/cache/fleet/vm-images");
  });
  // `nobody` is in every /etc/passwd (home /nonexistent); only root acts for a sudo caller.
  const passwd = Deno.readTextFileSync("/etc/passwd").split("\n").map((l) => l.split(":"));
  const nobody = passwd.find((f) => f[0] === "nobody");
  withEnv({
    XDG_CACHE_HOME: "/x/cache",
    SUDO_USER: "nobody",
    SUDO_UID: nobody?.[2],
    SUDO_GID: nobody?.[3],
  }, () => {
    assert.equal(
      defaultImageCacheDir(),
      Deno.uid() === 0 && nobody
        ? `${nobody[5]}/.cache/fleet/vm-images`
        : "/x/cache/fleet/vm-images",
    );
  });
});
