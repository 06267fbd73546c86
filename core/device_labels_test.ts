import assert from "node:assert/strict";
import { DEVICE_ID_LABEL } from "./device_info.ts";
import {
  adoptableLabels,
  applyLabelEdit,
  formatLabels,
  LabelEditError,
  parseLabelEdit,
  RegisteredLabels,
  targetingLabels,
  unregisteredLabels,
} from "./device_labels.ts";

Deno.test("targetingLabels(): a device with no registry entry has only its device-id label", () => {
  assert.deepStrictEqual(targetingLabels("pi-1", undefined), { [DEVICE_ID_LABEL]: "pi-1" });
});

Deno.test("targetingLabels(): the registry's labels, and a device-id entry cannot name another device", () => {
  assert.deepStrictEqual(
    targetingLabels("pi-1", { site: "lab", [DEVICE_ID_LABEL]: "vault-1" }),
    { site: "lab", [DEVICE_ID_LABEL]: "pi-1" },
  );
});

Deno.test("RegisteredLabels refuses a value no selector can match and ignores unknown fields", () => {
  assert.equal(RegisteredLabels.safeParse({ labels: { site: "Room 4" } }).success, false);
  assert.deepStrictEqual(
    RegisteredLabels.parse({ labels: { site: "lab" }, setBy: "a newer CLI" }),
    { labels: { site: "lab" } },
  );
});

Deno.test("unregisteredLabels(): what a device reports beyond its registry labels, device-id aside", () => {
  const targeting = targetingLabels("pi-1", { site: "lab" });
  assert.deepStrictEqual(
    unregisteredLabels({ site: "vault", tier: "x", [DEVICE_ID_LABEL]: "vault-1" }, targeting),
    { site: "vault", tier: "x" },
  );
  assert.deepStrictEqual(unregisteredLabels({ site: "lab" }, targeting), {});
});

Deno.test("parseLabelEdit(): key=value sets, key- removes, an empty value is a value", () => {
  assert.deepStrictEqual(parseLabelEdit(["site=lab", "tier=", "old-"]), {
    set: { site: "lab", tier: "" },
    remove: ["old"],
  });
  assert.deepStrictEqual(parseLabelEdit(["example.com/rack=r-7"]), {
    set: { "example.com/rack": "r-7" },
    remove: [],
  });
});

Deno.test("parseLabelEdit() refuses bad arguments, naming them and the rule", () => {
  const cases: [string[], RegExp][] = [
    [["site"], /"site" is neither key=value .* nor key-/],
    [["site=Room 4"], /Invalid label site="Room 4": label value "Room 4" must be at most 63/],
    [["Bad Key=x"], /Invalid label "Bad Key=x": label name "Bad Key" must be/],
    [["-"], /Invalid label "-": label name "" must be/],
    [[`${DEVICE_ID_LABEL}=vault-1`], /is the device's identity: it cannot be set or removed/],
    [[`${DEVICE_ID_LABEL}-`], /is the device's identity/],
    [["site=a", "site-"], /Label site is named twice/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseLabelEdit(args), (e: unknown) => {
      assert.ok(e instanceof LabelEditError);
      assert.equal(e.kind, "usage");
      assert.match(e.message, message);
      return true;
    }, args.join(" "));
  }
});

Deno.test("applyLabelEdit(): adds, keeps an equal value, removes; a change needs overwrite", () => {
  const current = { site: "lab", tier: "a", [DEVICE_ID_LABEL]: "pi-1" };
  assert.deepStrictEqual(
    applyLabelEdit(
      "pi-1",
      current,
      parseLabelEdit(["rack=r1", "site=lab", "tier-", "gone-"]),
      false,
    ),
    { site: "lab", rack: "r1" },
  );
  assert.throws(
    () => applyLabelEdit("pi-1", current, parseLabelEdit(["site=vault"]), false),
    /Device pi-1 already has site=lab: pass --overwrite to change it to vault/,
  );
  assert.deepStrictEqual(
    applyLabelEdit("pi-1", current, parseLabelEdit(["site=vault"]), true),
    { site: "vault", tier: "a" },
  );
});

Deno.test("adoptableLabels(): the selectable reported labels, without device-id", () => {
  assert.deepStrictEqual(
    adoptableLabels({ site: "lab", room: "Room 4", [DEVICE_ID_LABEL]: "other" }),
    { site: "lab" },
  );
});

Deno.test("formatLabels() sorts the pairs and says when there are none", () => {
  assert.equal(formatLabels({ b: "2", a: "1" }), "a=1,b=2");
  assert.equal(formatLabels({}), "(none)");
});
