import assert from "node:assert/strict";
import { MetricsRegistry } from "./metrics.ts";

Deno.test("text() writes HELP and TYPE before each family's samples, ending in a newline", () => {
  const registry = new MetricsRegistry();
  const requests = registry.counter("fleet_requests_total", "Requests answered.");
  requests.inc({ result: "ok" });
  requests.inc({ result: "ok" }, 2);
  requests.inc({ result: "error" });
  registry.gauge("fleet_up", "Whether it is up.", () => [{ value: 1 }]);
  assert.equal(
    registry.text(),
    [
      "# HELP fleet_requests_total Requests answered.",
      "# TYPE fleet_requests_total counter",
      'fleet_requests_total{result="ok"} 3',
      'fleet_requests_total{result="error"} 1',
      "# HELP fleet_up Whether it is up.",
      "# TYPE fleet_up gauge",
      "fleet_up 1",
      "",
    ].join("\n"),
  );
});

Deno.test("text() escapes label values and help text as the format requires", () => {
  const registry = new MetricsRegistry();
  registry.gauge("fleet_x", "a \\ b\nc", () => [{ labels: { name: 'say "hi"\\\n' }, value: 1 }]);
  const lines = registry.text().split("\n");
  assert.equal(lines[0], "# HELP fleet_x a \\\\ b\\nc");
  assert.equal(lines[2], 'fleet_x{name="say \\"hi\\"\\\\\\n"} 1');
});

Deno.test("text() writes special float values as Prometheus spells them", () => {
  const registry = new MetricsRegistry();
  registry.gauge("fleet_x", "x", () => [
    { labels: { k: "a" }, value: NaN },
    { labels: { k: "b" }, value: Infinity },
    { labels: { k: "c" }, value: -Infinity },
    { labels: { k: "d" }, value: 0.25 },
  ]);
  assert.deepEqual(registry.text().split("\n").slice(2, 6), [
    'fleet_x{k="a"} NaN',
    'fleet_x{k="b"} +Inf',
    'fleet_x{k="c"} -Inf',
    'fleet_x{k="d"} 0.25',
  ]);
});

Deno.test("a histogram writes cumulative buckets, +Inf, sum and count", () => {
  const registry = new MetricsRegistry();
  const latency = registry.histogram("fleet_latency_seconds", "Latency.", [0.01, 0.1]);
  latency.observe(0.005, { result: "allowed" });
  latency.observe(0.05, { result: "allowed" });
  latency.observe(3, { result: "allowed" });
  assert.deepEqual(registry.text().split("\n"), [
    "# HELP fleet_latency_seconds Latency.",
    "# TYPE fleet_latency_seconds histogram",
    'fleet_latency_seconds_bucket{result="allowed",le="0.01"} 1',
    'fleet_latency_seconds_bucket{result="allowed",le="0.1"} 2',
    'fleet_latency_seconds_bucket{result="allowed",le="+Inf"} 3',
    'fleet_latency_seconds_sum{result="allowed"} 3.055',
    'fleet_latency_seconds_count{result="allowed"} 3',
    "",
  ]);
});

Deno.test("a family with no samples yet still says its HELP and TYPE", () => {
  const registry = new MetricsRegistry();
  registry.counter("fleet_errors_total", "Errors.");
  assert.equal(
    registry.text(),
    "# HELP fleet_errors_total Errors.\n# TYPE fleet_errors_total counter\n",
  );
});

Deno.test("invalid names, reserved labels, twice-registered names and decreasing counters are refused", () => {
  const registry = new MetricsRegistry();
  assert.throws(() => registry.counter("fleet-bad", "x"), /not a valid Prometheus metric name/);
  registry.counter("fleet_ok_total", "x");
  assert.throws(() => registry.counter("fleet_ok_total", "x"), /registered twice/);
  registry.gauge("fleet_g", "x", () => [{ labels: { __name: "x" }, value: 1 }]);
  assert.throws(() => registry.text(), /not a valid Prometheus label name/);
  const counter = new MetricsRegistry().counter("fleet_c_total", "x");
  assert.throws(() => counter.inc({}, -1), /cannot decrease/);
  assert.throws(
    () => new MetricsRegistry().histogram("fleet_h", "x", [1, 1]),
    /buckets must increase/,
  );
});
