import assert from "node:assert/strict";
import { imageKey, imageRecipe, recipeHash } from "./recipe.ts";

Deno.test("imageRecipe() installs the arch's kernel, systemd, sshd, cloud-init and sudo", () => {
  for (
    const [arch, kernel] of [["x86_64", "linux-image-amd64"], [
      "aarch64",
      "linux-image-arm64",
    ]] as const
  ) {
    const recipe = imageRecipe(arch);
    for (
      const pkg of [
        kernel,
        "systemd",
        "systemd-sysv",
        "openssh-server",
        "cloud-init",
        "sudo",
        "ca-certificates",
      ]
    ) {
      assert.ok(recipe.packages.includes(pkg), `${arch}: ${pkg}`);
    }
    assert.match(recipe.files["/etc/cloud/cloud.cfg.d/90-fleet.cfg"] ?? "", /NoCloud/);
    assert.match(recipe.files["/etc/fstab"] ?? "", /^LABEL=fleet-root \/ ext4/);
  }
});

Deno.test("imageKey() is arch-suite-hash, stable, and changes with the recipe", () => {
  const a = imageRecipe("x86_64");
  assert.match(imageKey(a), /^x86_64-bookworm-[0-9a-f]{12}$/);
  assert.equal(recipeHash(a), recipeHash(imageRecipe("x86_64")));
  assert.notEqual(recipeHash(a), recipeHash({ ...a, packages: [...a.packages, "vim"] }));
  assert.notEqual(recipeHash(a), recipeHash(imageRecipe("x86_64", "trixie")));
  assert.notEqual(imageKey(a), imageKey(imageRecipe("aarch64")));
  // Key order does not matter, only content.
  const reordered = Object.fromEntries(Object.entries(a).reverse());
  assert.equal(recipeHash(reordered as typeof a), recipeHash(a));
});

Deno.test("imageRecipe() rejects a suite that is not a code name", () => {
  assert.throws(() => imageRecipe("x86_64", "../etc"), /code name/);
});
