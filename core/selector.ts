import * as z from "zod";
import { FleetError } from "./errors.ts";

/** Label key: optional DNS-subdomain prefix and '/', then a name of up to 63 characters. */
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** Why `key` is not a valid Kubernetes label key, or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !LABEL_PREFIX.test(prefix))) {
    return `label key prefix ${JSON.stringify(prefix)} must be a lowercase DNS subdomain`;
  }
  if (!LABEL_NAME.test(name)) {
    return `label name ${
      JSON.stringify(name)
    } must be 1-63 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Longest Kubernetes label value. */
export const LABEL_VALUE_MAX = 63;

/** The Kubernetes label value rule, in words. */
export const LABEL_VALUE_RULE =
  `at most ${LABEL_VALUE_MAX} characters of a-z, A-Z, 0-9, '-', '_' and '.', starting and ending with a letter or digit`;

/** Why `value` is not a valid Kubernetes label value, or undefined. */
export function labelValueProblem(value: string): string | undefined {
  return LABEL_VALUE.test(value)
    ? undefined
    : `label value ${JSON.stringify(value)} must be ${LABEL_VALUE_RULE}`;
}

/**
 * A valid label value close to free text, to suggest to a person: accents dropped, lowercase,
 * each run of other characters one '-', the ends trimmed, cut to 63 characters at a separator
 * when there is one. `"Building 7 / Room 3"` gives `"building-7-room-3"`; text with no letter
 * or digit gives "".
 */
export function suggestLabelValue(text: string): string {
  const trimEnds = (s: string) => s.replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, "");
  const cleaned = trimEnds(
    text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase()
      .replace(/[^a-z0-9._-]+/g, "-")
      .replace(/[-_.]*-[-_.]*/g, "-"),
  );
  if (cleaned.length <= LABEL_VALUE_MAX) return cleaned;
  // Cut where a word ends, unless that loses more than half of what fits.
  const head = cleaned.slice(0, LABEL_VALUE_MAX + 1);
  const boundary = Math.max(head.lastIndexOf("-"), head.lastIndexOf("_"), head.lastIndexOf("."));
  return trimEnds(
    cleaned.slice(0, boundary > LABEL_VALUE_MAX / 2 ? boundary : LABEL_VALUE_MAX),
  );
}

export const LabelKey = z.string().superRefine((key, ctx) => {
  const problem = labelKeyProblem(key);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
export const LabelValue = z.string().superRefine((value, ctx) => {
  const problem = labelValueProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});
export const Labels = z.record(LabelKey, LabelValue);
export type Labels = z.infer<typeof Labels>;

export const SelectorOperators = ["In", "NotIn", "Exists", "DoesNotExist"] as const;
export type SelectorOperator = typeof SelectorOperators[number];

export const LabelSelectorRequirement = z.object({
  key: LabelKey,
  operator: z.enum(SelectorOperators),
  values: z.array(LabelValue).optional(),
}).superRefine((req, ctx) => {
  const count = req.values?.length ?? 0;
  if ((req.operator === "In" || req.operator === "NotIn") && count === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["values"],
      message: `operator ${req.operator} on key ${
        JSON.stringify(req.key)
      } needs at least one value`,
    });
  }
  if ((req.operator === "Exists" || req.operator === "DoesNotExist") && count > 0) {
    ctx.addIssue({
      code: "custom",
      path: ["values"],
      message: `operator ${req.operator} on key ${JSON.stringify(req.key)} takes no values`,
    });
  }
});
export type LabelSelectorRequirement = z.infer<typeof LabelSelectorRequirement>;

/** Kubernetes LabelSelector: all of matchLabels and all of matchExpressions must hold. */
export const LabelSelector = z.object({
  matchLabels: Labels.optional(),
  matchExpressions: z.array(LabelSelectorRequirement).optional(),
});
export type LabelSelector = z.infer<typeof LabelSelector>;

function requirementHolds(req: LabelSelectorRequirement, labels: Readonly<Labels>): boolean {
  const has = Object.hasOwn(labels, req.key);
  switch (req.operator) {
    case "In":
      return has && (req.values ?? []).includes(labels[req.key] ?? "");
    case "NotIn":
      return !has || !(req.values ?? []).includes(labels[req.key] ?? "");
    case "Exists":
      return has;
    case "DoesNotExist":
      return !has;
  }
}

/** Whether `labels` satisfy `selector`; an empty selector matches every device. */
export function matchesSelector(selector: LabelSelector, labels: Readonly<Labels>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((req) => requirementHolds(req, labels));
}

/** Whether `selector` says nothing (and so, alone, matches every device). */
export function isEmptySelector(selector: LabelSelector): boolean {
  return Object.keys(selector.matchLabels ?? {}).length === 0 &&
    (selector.matchExpressions ?? []).length === 0;
}

/** A selector string the CLI could not read; names the text and the accepted forms. */
export class SelectorSyntaxError extends FleetError {
  override name = "SelectorSyntaxError";
  constructor(readonly text: string, readonly problem: string) {
    super(
      "usage",
      `Invalid selector ${JSON.stringify(text)}: ${problem}. ` +
        "Use key=value, key!=value, 'key in (a,b)', 'key notin (a,b)', key or !key",
    );
  }
}

/** Splits on commas that are not inside parentheses. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = "";
  for (const ch of text) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      terms.push(current.trim());
      current = "";
    } else {
      current += ch;
    }
  }
  terms.push(current.trim());
  return terms;
}

function checkKey(text: string, key: string): string {
  const problem = labelKeyProblem(key);
  if (problem) throw new SelectorSyntaxError(text, problem);
  return key;
}

function checkValue(text: string, value: string): string {
  const problem = labelValueProblem(value);
  if (problem) throw new SelectorSyntaxError(text, problem);
  return value;
}

/**
 * Parses the kubectl selector syntax (`env=prod,tier in (edge,core),!legacy`) into a
 * LabelSelector; several strings are combined with AND.
 * @throws SelectorSyntaxError naming the term it could not read
 */
export function parseSelector(texts: readonly string[]): LabelSelector {
  const matchLabels: Record<string, string> = {};
  const matchExpressions: LabelSelectorRequirement[] = [];
  for (const text of texts) {
    for (const term of splitTerms(text)) {
      if (term === "") throw new SelectorSyntaxError(text, "it has an empty term");
      const set = /^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/.exec(term);
      if (set) {
        const [, key = "", op, list = ""] = set;
        const values = list.split(",").map((v) => checkValue(text, v.trim()));
        if (values.length === 0 || values.every((v) => v === "")) {
          throw new SelectorSyntaxError(text, `'${op}' needs at least one value`);
        }
        matchExpressions.push({
          key: checkKey(text, key),
          operator: op === "in" ? "In" : "NotIn",
          values,
        });
        continue;
      }
      const neq = /^([^=!\s]+)\s*!=\s*(\S*)$/.exec(term);
      if (neq) {
        const [, key = "", value = ""] = neq;
        matchExpressions.push({
          key: checkKey(text, key),
          operator: "NotIn",
          values: [checkValue(text, value)],
        });
        continue;
      }
      const eq = /^([^=!\s]+)\s*==?\s*(\S*)$/.exec(term);
      if (eq) {
        const [, key = "", value = ""] = eq;
        const k = checkKey(text, key);
        const existing = matchLabels[k];
        if (existing !== undefined && existing !== value) {
          throw new SelectorSyntaxError(
            text,
            `key ${JSON.stringify(k)} is required to equal two values`,
          );
        }
        matchLabels[k] = checkValue(text, value);
        continue;
      }
      const not = /^!\s*(\S+)$/.exec(term);
      if (not) {
        matchExpressions.push({ key: checkKey(text, not[1] ?? ""), operator: "DoesNotExist" });
        continue;
      }
      if (/^\S+$/.test(term)) {
        matchExpressions.push({ key: checkKey(text, term), operator: "Exists" });
        continue;
      }
      throw new SelectorSyntaxError(text, `cannot read ${JSON.stringify(term)}`);
    }
  }
  const selector: LabelSelector = {};
  if (Object.keys(matchLabels).length > 0) selector.matchLabels = matchLabels;
  if (matchExpressions.length > 0) selector.matchExpressions = matchExpressions;
  return selector;
}

/** Renders a selector in the kubectl syntax, for tables and messages. */
export function formatSelector(selector: LabelSelector): string {
  const terms = Object.entries(selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const req of selector.matchExpressions ?? []) {
    const values = (req.values ?? []).join(",");
    switch (req.operator) {
      case "In":
        terms.push(`${req.key} in (${values})`);
        break;
      case "NotIn":
        // `key!=` (NotIn [""]) has no `notin (...)` spelling the parser accepts.
        terms.push(values === "" ? `${req.key}!=` : `${req.key} notin (${values})`);
        break;
      case "Exists":
        terms.push(req.key);
        break;
      case "DoesNotExist":
        terms.push(`!${req.key}`);
        break;
    }
  }
  return terms.length > 0 ? terms.join(",") : "<all devices>";
}
