import assert from "node:assert/strict";
import { describeIssues } from "./errors.ts";
import {
  formatSelector,
  type Labels,
  LabelSelector,
  labelValueProblem,
  matchesSelector,
  parseSelector,
  SelectorSyntaxError,
  suggestLabelValue,
} from "./selector.ts";

const DEVICE: Labels = {
  "fleet.nationtech.io/device-id": "dev1",
  env: "prod",
  tier: "edge",
  site: "mtl",
};

// --- matchesSelector ------------------------------------------------------------------

Deno.test("matchesSelector() matches when every matchLabels entry is equal", () => {
  assert.equal(matchesSelector({ matchLabels: { env: "prod", tier: "edge" } }, DEVICE), true);
});

Deno.test("matchesSelector() fails on a matchLabels value mismatch", () => {
  assert.equal(matchesSelector({ matchLabels: { env: "dev" } }, DEVICE), false);
});

Deno.test("matchesSelector() fails on a matchLabels key the device lacks", () => {
  assert.equal(matchesSelector({ matchLabels: { gpu: "true" } }, DEVICE), false);
  // An empty expected value still requires the key.
  assert.equal(matchesSelector({ matchLabels: { gpu: "" } }, DEVICE), false);
  assert.equal(matchesSelector({ matchLabels: { gpu: "" } }, { gpu: "" }), true);
});

Deno.test("matchesSelector() does not treat inherited properties as labels", () => {
  assert.equal(
    matchesSelector({ matchExpressions: [{ key: "toString", operator: "Exists" }] }, {}),
    false,
  );
  assert.equal(
    matchesSelector({ matchExpressions: [{ key: "constructor", operator: "DoesNotExist" }] }, {}),
    true,
  );
});

Deno.test("matchesSelector() In holds when the value is listed", () => {
  const sel = {
    matchExpressions: [{ key: "tier", operator: "In" as const, values: ["core", "edge"] }],
  };
  assert.equal(matchesSelector(sel, DEVICE), true);
  assert.equal(matchesSelector(sel, { ...DEVICE, tier: "cloud" }), false);
  assert.equal(matchesSelector(sel, { env: "prod" }), false, "key absent");
});

Deno.test("matchesSelector() NotIn holds when the value is not listed or the key is absent", () => {
  const sel = { matchExpressions: [{ key: "tier", operator: "NotIn" as const, values: ["core"] }] };
  assert.equal(matchesSelector(sel, DEVICE), true);
  assert.equal(matchesSelector(sel, { ...DEVICE, tier: "core" }), false);
  assert.equal(matchesSelector(sel, { env: "prod" }), true, "key absent");
});

Deno.test("matchesSelector() Exists holds when the key is present, whatever its value", () => {
  const sel = { matchExpressions: [{ key: "site", operator: "Exists" as const }] };
  assert.equal(matchesSelector(sel, DEVICE), true);
  assert.equal(matchesSelector(sel, { site: "" }), true);
  assert.equal(matchesSelector(sel, { env: "prod" }), false);
});

Deno.test("matchesSelector() DoesNotExist holds when the key is absent", () => {
  const sel = { matchExpressions: [{ key: "legacy", operator: "DoesNotExist" as const }] };
  assert.equal(matchesSelector(sel, DEVICE), true);
  assert.equal(matchesSelector(sel, { ...DEVICE, legacy: "" }), false);
});

Deno.test("matchesSelector() ANDs matchLabels and every matchExpression", () => {
  const sel: LabelSelector = {
    matchLabels: { env: "prod" },
    matchExpressions: [
      { key: "tier", operator: "In", values: ["edge", "core"] },
      { key: "legacy", operator: "DoesNotExist" },
    ],
  };
  assert.equal(matchesSelector(sel, DEVICE), true);
  assert.equal(matchesSelector(sel, { ...DEVICE, env: "dev" }), false);
  assert.equal(matchesSelector(sel, { ...DEVICE, tier: "cloud" }), false);
  assert.equal(matchesSelector(sel, { ...DEVICE, legacy: "yes" }), false);
});

Deno.test("matchesSelector() with an empty selector matches every device", () => {
  assert.equal(matchesSelector({}, DEVICE), true);
  assert.equal(matchesSelector({}, {}), true);
  assert.equal(matchesSelector({ matchLabels: {}, matchExpressions: [] }, {}), true);
});

// --- LabelSelector schema -------------------------------------------------------------

Deno.test("LabelSelector schema rejects In and NotIn without values", () => {
  for (const operator of ["In", "NotIn"]) {
    for (const values of [undefined, []]) {
      const result = LabelSelector.safeParse({
        matchExpressions: [{ key: "tier", operator, ...(values ? { values } : {}) }],
      });
      assert.equal(result.success, false);
      const issue = result.error!.issues[0]!;
      assert.deepStrictEqual(issue.path, ["matchExpressions", 0, "values"]);
      assert.equal(issue.message, `operator ${operator} on key "tier" needs at least one value`);
    }
  }
});

Deno.test("LabelSelector schema rejects Exists and DoesNotExist with values", () => {
  for (const operator of ["Exists", "DoesNotExist"]) {
    const result = LabelSelector.safeParse({
      matchExpressions: [{ key: "tier", operator, values: ["edge"] }],
    });
    assert.equal(result.success, false);
    assert.equal(
      result.error!.issues[0]!.message,
      `operator ${operator} on key "tier" takes no values`,
    );
  }
  // An empty list is the same as none.
  assert.equal(
    LabelSelector.safeParse({ matchExpressions: [{ key: "t", operator: "Exists", values: [] }] })
      .success,
    true,
  );
});

Deno.test("LabelSelector schema rejects an unknown operator, a bad key and a bad value", () => {
  assert.equal(
    LabelSelector.safeParse({ matchExpressions: [{ key: "t", operator: "Gt", values: ["1"] }] })
      .success,
    false,
  );
  // describeIssues is what users see; zod itself says only "Invalid key in record".
  const badKey = LabelSelector.safeParse({ matchLabels: { "-tier": "edge" } });
  assert.equal(badKey.success, false);
  assert.match(describeIssues(badKey.error!), /^matchLabels\.-tier: label name "-tier" must be/);
  const badPrefix = LabelSelector.safeParse({ matchLabels: { "Fleet.IO/tier": "edge" } });
  assert.equal(badPrefix.success, false);
  assert.match(describeIssues(badPrefix.error!), /label key prefix "Fleet.IO" must be/);
  const badExprKey = LabelSelector.safeParse({
    matchExpressions: [{ key: "a b", operator: "Exists" }],
  });
  assert.equal(badExprKey.success, false);
  assert.match(describeIssues(badExprKey.error!), /^matchExpressions\[0\]\.key: label name "a b"/);
  const badValue = LabelSelector.safeParse({ matchLabels: { tier: "edge*" } });
  assert.equal(badValue.success, false);
  assert.match(describeIssues(badValue.error!), /^matchLabels\.tier: label value "edge\*" must/);
});

Deno.test("LabelSelector schema accepts prefixed keys and empty values", () => {
  const sel = {
    matchLabels: { "fleet.nationtech.io/device-id": "dev1", "app.kubernetes.io/part-of": "" },
  };
  assert.deepStrictEqual(LabelSelector.parse(sel), sel);
});

// --- parseSelector --------------------------------------------------------------------

const PARSES: [string[], LabelSelector][] = [
  [["a=b"], { matchLabels: { a: "b" } }],
  [["a==b"], { matchLabels: { a: "b" } }],
  [["a = b"], { matchLabels: { a: "b" } }],
  [["a="], { matchLabels: { a: "" } }],
  [["a!=b"], { matchExpressions: [{ key: "a", operator: "NotIn", values: ["b"] }] }],
  [["a in (x,y)"], { matchExpressions: [{ key: "a", operator: "In", values: ["x", "y"] }] }],
  [["a in ( x , y )"], { matchExpressions: [{ key: "a", operator: "In", values: ["x", "y"] }] }],
  [["a notin (x)"], { matchExpressions: [{ key: "a", operator: "NotIn", values: ["x"] }] }],
  [["a"], { matchExpressions: [{ key: "a", operator: "Exists" }] }],
  [["!a"], { matchExpressions: [{ key: "a", operator: "DoesNotExist" }] }],
  [
    ["env=prod,tier in (edge,core),!legacy"],
    {
      matchLabels: { env: "prod" },
      matchExpressions: [
        { key: "tier", operator: "In", values: ["edge", "core"] },
        { key: "legacy", operator: "DoesNotExist" },
      ],
    },
  ],
  [
    ["env=prod", "tier notin (core)", "gpu"],
    {
      matchLabels: { env: "prod" },
      matchExpressions: [
        { key: "tier", operator: "NotIn", values: ["core"] },
        { key: "gpu", operator: "Exists" },
      ],
    },
  ],
  [["env=prod", "env=prod"], { matchLabels: { env: "prod" } }],
  [
    ["fleet.nationtech.io/device-id=dev1"],
    { matchLabels: { "fleet.nationtech.io/device-id": "dev1" } },
  ],
  [
    ["!fleet.nationtech.io/retired"],
    { matchExpressions: [{ key: "fleet.nationtech.io/retired", operator: "DoesNotExist" }] },
  ],
  [[], {}],
];

for (const [texts, expected] of PARSES) {
  Deno.test(`parseSelector() reads ${JSON.stringify(texts)}`, () => {
    const parsed = parseSelector(texts);
    assert.deepStrictEqual(parsed, expected);
    // What the parser produces is always a valid LabelSelector.
    assert.deepStrictEqual(LabelSelector.parse(parsed), parsed);
  });
}

Deno.test("parseSelector() result selects the devices its text describes", () => {
  const sel = parseSelector(["env=prod,tier in (edge,core),!legacy"]);
  assert.equal(matchesSelector(sel, DEVICE), true);
  assert.equal(matchesSelector(sel, { ...DEVICE, legacy: "1" }), false);
  assert.equal(
    matchesSelector(parseSelector(["fleet.nationtech.io/device-id=dev1"]), DEVICE),
    true,
  );
  assert.equal(
    matchesSelector(parseSelector(["fleet.nationtech.io/device-id=dev2"]), DEVICE),
    false,
  );
});

const ERRORS: [string, RegExp][] = [
  ["a in ()", /'in' needs at least one value/],
  ["a notin ( )", /'notin' needs at least one value/],
  ["=b", /label name "=b"/],
  ["a=b c", /cannot read "a=b c"/],
  ["-a=b", /label name "-a"/],
  ["a=b,a=c", /key "a" is required to equal two values/],
  ["a=b,,c=d", /empty term/],
  ["", /empty term/],
  ["a=b,", /empty term/],
  ["a in (x,y", /cannot read "a in \(x,y"/],
  ["a=b*", /label value "b\*"/],
  ["Bad.Prefix/a=b", /prefix "Bad.Prefix"/],
];

for (const [text, problem] of ERRORS) {
  Deno.test(`parseSelector() rejects ${JSON.stringify(text)} with a SelectorSyntaxError`, () => {
    assert.throws(
      () => parseSelector([text]),
      (e: unknown) => {
        assert.ok(e instanceof SelectorSyntaxError);
        assert.equal(e.text, text);
        assert.ok(e.message.startsWith(`Invalid selector ${JSON.stringify(text)}: `), e.message);
        assert.match(e.message, problem);
        assert.match(e.message, /Use key=value, key!=value/);
        return true;
      },
    );
  });
}

Deno.test("parseSelector() rejects conflicting equalities across separate strings", () => {
  assert.throws(() => parseSelector(["a=b", "a=c"]), SelectorSyntaxError);
});

// --- formatSelector -------------------------------------------------------------------

Deno.test("formatSelector() renders the kubectl syntax", () => {
  assert.equal(
    formatSelector({
      matchLabels: { env: "prod" },
      matchExpressions: [
        { key: "tier", operator: "In", values: ["edge", "core"] },
        { key: "site", operator: "NotIn", values: ["lab"] },
        { key: "gpu", operator: "Exists" },
        { key: "legacy", operator: "DoesNotExist" },
      ],
    }),
    "env=prod,tier in (edge,core),site notin (lab),gpu,!legacy",
  );
});

Deno.test("formatSelector() describes the empty selector as all devices", () => {
  assert.equal(formatSelector({}), "<all devices>");
});

const ROUND_TRIPS = [
  "a=b",
  "a==b",
  "a=",
  "a!=b",
  "a!=",
  "a in (x,y)",
  "a notin (x)",
  "a",
  "!a",
  "env=prod,tier in (edge,core),!legacy",
  "fleet.nationtech.io/device-id=dev1,!fleet.nationtech.io/retired",
  "x in (1,2,3),y notin (a,b),z=w,k",
];

for (const text of ROUND_TRIPS) {
  Deno.test(`formatSelector() round-trips ${JSON.stringify(text)} through parseSelector()`, () => {
    const parsed = parseSelector([text]);
    const formatted = formatSelector(parsed);
    assert.deepStrictEqual(parseSelector([formatted]), parsed);
    assert.equal(formatSelector(parseSelector([formatted])), formatted);
  });
}

// --- suggestLabelValue ----------------------------------------------------------------

for (
  const [text, expected] of [
    ["Building 7 / Room 3", "building-7-room-3"],
    ["Building 4, Room 12", "building-4-room-12"],
    ["  Lab A -- 2nd floor!  ", "lab-a-2nd-floor"],
    ["Montréal Çà", "montreal-ca"],
    ["v1.2_beta", "v1.2_beta"],
    ["a . b", "a-b"],
    ["日本", ""],
    ["", ""],
  ] as const
) {
  Deno.test(`suggestLabelValue() turns ${JSON.stringify(text)} into ${JSON.stringify(expected)}`, () => {
    assert.equal(suggestLabelValue(text), expected);
  });
}

Deno.test("suggestLabelValue() cuts a long text at the last word that fits in 63 characters", () => {
  const text = "Main warehouse, loading dock B, north wall, second shelf from the top";
  const suggestion = suggestLabelValue(text);
  assert.equal(suggestion, "main-warehouse-loading-dock-b-north-wall-second-shelf-from-the");
  assert.ok(suggestion.length <= 63);
});

Deno.test("suggestLabelValue() cuts a long text with no separator at 63 characters", () => {
  assert.equal(suggestLabelValue("X".repeat(100)), "x".repeat(63));
});

Deno.test("suggestLabelValue() always gives a valid label value (seeded fuzz)", () => {
  const alphabet = ["a", "Z", "0", " ", "-", "_", ".", "/", ",", "é", "日", "🇨🇦", "\t"];
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < 2000; i++) {
    const length = next() % 120;
    const text = Array.from({ length }, () => alphabet[next() % alphabet.length]).join("");
    const suggestion = suggestLabelValue(text);
    assert.equal(
      labelValueProblem(suggestion),
      undefined,
      `${JSON.stringify(text)} -> ${suggestion}`,
    );
  }
});
