/**
 * A small Prometheus registry and its text exposition format (version 0.0.4). Written here
 * rather than taken from prom-client: that library is built on Node's cluster and perf_hooks
 * modules and would grow the bundle the agent shares; the control plane needs only counters,
 * gauges read at scrape time and one histogram shape.
 */

/** Label names to values; no per-device labels on the control plane (DESIGN §9). */
export type MetricLabels = Readonly<Record<string, string>>;

/** One value of a gauge read at scrape time. */
export interface Sample {
  labels?: MetricLabels;
  value: number;
}

/** The content type Prometheus expects for the text format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  lines(): string[];
}

function escapeLabel(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function escapeHelp(help: string): string {
  return help.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function labelText(labels: MetricLabels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return "";
  for (const [name] of entries) {
    if (!LABEL.test(name) || name.startsWith("__")) {
      throw new Error(`Metric label name "${name}" is not a valid Prometheus label name`);
    }
  }
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}`;
}

function line(name: string, labels: MetricLabels | undefined, value: number): string {
  return `${name}${labelText(labels)} ${formatValue(value)}`;
}

/** A monotonically increasing count, one series per label set. */
export class Counter {
  readonly #values = new Map<string, { labels: MetricLabels; value: number }>();

  constructor(readonly name: string) {}

  inc(labels: MetricLabels = {}, by = 1): void {
    if (by < 0) throw new Error(`Counter ${this.name} cannot decrease (by ${by})`);
    const key = JSON.stringify(Object.entries(labels).sort());
    const series = this.#values.get(key) ?? { labels, value: 0 };
    series.value += by;
    this.#values.set(key, series);
  }

  lines(): string[] {
    return [...this.#values.values()].map((s) => line(this.name, s.labels, s.value));
  }
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram {
  readonly #series = new Map<
    string,
    { labels: MetricLabels; counts: number[]; sum: number; count: number }
  >();

  constructor(readonly name: string, readonly buckets: readonly number[]) {
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i]! <= buckets[i - 1]!) {
        throw new Error(`Histogram ${name} buckets must increase: ${buckets.join(", ")}`);
      }
    }
  }

  observe(value: number, labels: MetricLabels = {}): void {
    const key = JSON.stringify(Object.entries(labels).sort());
    const series = this.#series.get(key) ??
      { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
    this.buckets.forEach((le, i) => {
      if (value <= le) series.counts[i]!++;
    });
    series.sum += value;
    series.count++;
    this.#series.set(key, series);
  }

  lines(): string[] {
    return [...this.#series.values()].flatMap((s) => [
      ...this.buckets.map((le, i) =>
        line(`${this.name}_bucket`, { ...s.labels, le: formatValue(le) }, s.counts[i]!)
      ),
      line(`${this.name}_bucket`, { ...s.labels, le: "+Inf" }, s.count),
      line(`${this.name}_sum`, s.labels, s.sum),
      line(`${this.name}_count`, s.labels, s.count),
    ]);
  }
}

/** The metrics one process exposes on /metrics. */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();

  #add(family: Family): void {
    if (!NAME.test(family.name)) {
      throw new Error(`Metric name "${family.name}" is not a valid Prometheus metric name`);
    }
    if (this.#families.has(family.name)) {
      throw new Error(`Metric ${family.name} is registered twice`);
    }
    this.#families.set(family.name, family);
  }

  counter(name: string, help: string): Counter {
    const counter = new Counter(name);
    this.#add({ name, help, type: "counter", lines: () => counter.lines() });
    return counter;
  }

  /** A counter whose value is kept elsewhere and read at scrape time (e.g. a stats object). */
  counterFrom(name: string, help: string, read: () => Iterable<Sample>): void {
    this.#add({ name, help, type: "counter", lines: () => samples(name, read) });
  }

  /** A gauge read at scrape time. */
  gauge(name: string, help: string, read: () => Iterable<Sample>): void {
    this.#add({ name, help, type: "gauge", lines: () => samples(name, read) });
  }

  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    const histogram = new Histogram(name, buckets);
    this.#add({ name, help, type: "histogram", lines: () => histogram.lines() });
    return histogram;
  }

  /** Every family in the text exposition format, ending with a newline. */
  text(): string {
    const out: string[] = [];
    for (const family of this.#families.values()) {
      out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
      out.push(`# TYPE ${family.name} ${family.type}`);
      out.push(...family.lines());
    }
    return out.length === 0 ? "" : `${out.join("\n")}\n`;
  }
}

function samples(name: string, read: () => Iterable<Sample>): string[] {
  return [...read()].map((s) => line(name, s.labels, s.value));
}

/** `fleet_build_info{version}` 1: which build a process runs. */
export function registerBuildInfo(registry: MetricsRegistry, version: string): void {
  registry.gauge(
    "fleet_build_info",
    "Always 1; its labels say which Fleet build and Deno runtime this process runs.",
    () => [{ labels: { version, deno: Deno.version.deno }, value: 1 }],
  );
}
