// The dashboard: /api/v1/metrics (period figures, reports per day, time-to-issue histogram,
// per-agent steps), /metrics (counters whose change between polls gives throughput and error
// rate; consumer lag) and /api/v1/health (per-agent health), polled every 5 seconds. Every
// chart has a data table for screen readers, filled from the same numbers.
import {
  API,
  ApiError,
  api,
  apiFetch,
  badge,
  el,
  every,
  fill,
  formatNumber,
  formatPercent,
  formatSeconds,
  initPage,
  renderError,
} from "./common.js";

const POLL_MS = 5000;
const LIVE_POINTS = 60; // five minutes of 5-second polls
const COLOURS = {
  blue: "#1f5fbf",
  green: "#1e7b34",
  red: "#b3261e",
  orange: "#9a5800",
  purple: "#6a3d9a",
  grey: "#4a4f57",
};
const SERIES = [COLOURS.blue, COLOURS.orange, COLOURS.purple, COLOURS.green, COLOURS.red, COLOURS.grey];

const Chart = window.Chart;
const periodSelect = document.getElementById("period");
const pauseButton = document.getElementById("pause");
const errorBox = document.getElementById("dashboard-error");

// ---------------------------------------------------------------- charts

function baseOptions(extra = {}) {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    plugins: { legend: { position: "bottom", labels: { color: "#1a1a1a" } } },
    scales: {
      x: { ticks: { color: "#1a1a1a" }, grid: { color: "#d6d9de" } },
      y: { beginAtZero: true, ticks: { color: "#1a1a1a", precision: 0 }, grid: { color: "#d6d9de" } },
    },
    ...extra,
  };
}

function makeChart(id, type, datasets, options = baseOptions()) {
  if (!Chart) return null;
  Chart.defaults.font.size = 13;
  return new Chart(document.getElementById(id), {
    type,
    data: { labels: [], datasets: datasets.map(([label, colour]) => dataset(label, colour, type)) },
    options,
  });
}

function dataset(label, colour, type) {
  return {
    label,
    data: [],
    backgroundColor: colour,
    borderColor: colour,
    borderWidth: type === "line" ? 2 : 0,
    pointRadius: type === "line" ? 2 : undefined,
    tension: 0.2,
  };
}

const charts = {
  daily: makeChart("chart-daily", "bar", [
    ["Submitted", COLOURS.blue],
    ["Completed", COLOURS.green],
    ["Failed", COLOURS.red],
  ]),
  histogram: makeChart("chart-histogram", "bar", [["Requests", COLOURS.blue]]),
  rates: makeChart(
    "chart-rates",
    "line",
    [
      ["Throughput (reports/min)", COLOURS.blue],
      ["Error rate (%)", COLOURS.red],
    ],
    baseOptions({
      scales: {
        x: { ticks: { color: "#1a1a1a", maxTicksLimit: 6 }, grid: { color: "#d6d9de" } },
        y: {
          beginAtZero: true,
          title: { display: true, text: "reports/min", color: "#1a1a1a" },
          ticks: { color: "#1a1a1a" },
          grid: { color: "#d6d9de" },
        },
        y1: {
          beginAtZero: true,
          suggestedMax: 100,
          position: "right",
          title: { display: true, text: "error %", color: "#1a1a1a" },
          ticks: { color: "#1a1a1a" },
          grid: { drawOnChartArea: false },
        },
      },
    }),
  ),
  lag: makeChart("chart-lag", "line", []),
  agents: makeChart(
    "chart-agents",
    "bar",
    [
      ["Succeeded", COLOURS.green],
      ["Failed", COLOURS.red],
    ],
    baseOptions({
      scales: {
        x: { stacked: true, ticks: { color: "#1a1a1a" }, grid: { color: "#d6d9de" } },
        y: { stacked: true, beginAtZero: true, ticks: { color: "#1a1a1a", precision: 0 }, grid: { color: "#d6d9de" } },
      },
    }),
  ),
};
if (charts.rates) charts.rates.data.datasets[1].yAxisID = "y1";

function draw(name, labels, series) {
  const chart = charts[name];
  if (!chart) return;
  chart.data.labels = labels;
  series.forEach((values, i) => {
    if (chart.data.datasets[i]) chart.data.datasets[i].data = values;
  });
  chart.update("none");
}

/** The screen-reader table of a chart: a caption, column heads, one row per label. */
function table(id, caption, heads, rows) {
  fill(
    document.getElementById(id),
    el("caption", {}, caption),
    el("thead", {}, el("tr", {}, heads.map((h, i) => el("th", { scope: "col", class: i ? "num" : null }, h)))),
    el(
      "tbody",
      {},
      rows.length
        ? rows.map((r) => el("tr", {}, el("th", { scope: "row" }, r[0]), r.slice(1).map((v) => el("td", { class: "num" }, v))))
        : el("tr", {}, el("td", { colspan: String(heads.length) }, "No data yet")),
    ),
  );
}

function describe(id, text) {
  document.getElementById(id).setAttribute("aria-label", text);
}

const sum = (values) => values.reduce((a, b) => a + (Number(b) || 0), 0);

// ---------------------------------------------------------------- /api/v1/metrics

function showMetrics(doc) {
  setKpi("kpi-success", formatPercent(doc.success_rate));
  setKpi("kpi-median", formatSeconds(doc.processing_time_seconds?.median));
  setKpi("kpi-p95", formatSeconds(doc.processing_time_seconds?.p95));
  setKpi("kpi-active", formatNumber(doc.requests?.active));

  const daily = Array.isArray(doc.daily) ? doc.daily : [];
  const dates = daily.map((d) => d.date);
  const submitted = daily.map((d) => d.submitted ?? 0);
  const completed = daily.map((d) => d.completed ?? 0);
  const failed = daily.map((d) => d.failed ?? 0);
  draw("daily", dates, [submitted, completed, failed]);
  table(
    "table-daily",
    "Reports per day",
    ["Date", "Submitted", "Completed", "Failed"],
    daily.map((d, i) => [d.date, submitted[i], completed[i], failed[i]]),
  );
  describe(
    "chart-daily",
    daily.length
      ? `Reports per day over ${daily.length} days: ${sum(submitted)} submitted, ${sum(completed)} completed, ${sum(failed)} failed.`
      : "Reports per day: no data from the service.",
  );

  const histogram = doc.processing_time_histogram;
  const bounds = Array.isArray(histogram?.bounds_seconds) ? histogram.bounds_seconds : [];
  const counts = Array.isArray(histogram?.counts) ? histogram.counts : [];
  const bins = counts.map((_, i) =>
    i < bounds.length ? `≤ ${formatSeconds(bounds[i])}` : `> ${formatSeconds(bounds[bounds.length - 1])}`,
  );
  draw("histogram", bins, [counts]);
  table("table-histogram", "Time to issue: requests per time band", ["Time to issue", "Requests"], bins.map((b, i) => [b, counts[i]]));
  describe(
    "chart-histogram",
    counts.length
      ? `Time to issue of ${sum(counts)} requests; median ${formatSeconds(doc.processing_time_seconds?.median)}, 95th percentile ${formatSeconds(doc.processing_time_seconds?.p95)}.`
      : "Time to issue: no data from the service.",
  );

  const agents = Object.entries(doc.agents ?? {});
  const names = agents.map(([name]) => name.replace(/_agent$/, "").replace(/_/g, " "));
  const ok = agents.map(([, a]) => a.success ?? 0);
  const bad = agents.map(([, a]) => a.failed ?? 0);
  draw("agents", names, [ok, bad]);
  table(
    "table-agents",
    "Steps handled per agent in the period",
    ["Agent", "Succeeded", "Failed", "Success rate", "Average time"],
    agents.map(([, a], i) => [names[i], ok[i], bad[i], formatPercent(a.success_rate), formatSeconds(a.average_time_seconds)]),
  );
  describe(
    "chart-agents",
    agents.length
      ? `Steps per agent: ${names.map((n, i) => `${n} ${ok[i]} succeeded, ${bad[i]} failed`).join("; ")}.`
      : "Steps per agent: no data.",
  );
}

function setKpi(id, text) {
  document.getElementById(id).textContent = text;
}

// ---------------------------------------------------------------- /metrics (Prometheus text)

/** [{name, labels, value}] of the Prometheus text format (comments skipped). */
export function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

const live = { labels: [], throughput: [], errors: [], lag: new Map(), previous: null };

function counter(samples, name) {
  return sum(samples.filter((s) => s.name === name).map((s) => s.value));
}

function showPrometheus(text) {
  const samples = parsePrometheus(text);
  const now = { at: Date.now(), total: counter(samples, "ai_pipeline_requests_total") };
  now.failed = counter(samples, "ai_pipeline_requests_failed_total");
  now.completed = counter(samples, "ai_pipeline_requests_completed_total");
  const lagSamples = samples.filter((s) => s.name === "kafka_consumer_lag_sum");
  const lagTotal = sum(lagSamples.map((s) => s.value));
  setKpi("kpi-lag", formatNumber(lagTotal));

  const previous = live.previous;
  live.previous = now;
  if (!previous || now.total < previous.total) return; // one sample, or the service restarted
  const minutes = (now.at - previous.at) / 60000;
  const throughput = minutes > 0 ? (now.total - previous.total) / minutes : 0;
  const ended = now.completed - previous.completed + (now.failed - previous.failed);
  const errorRate = ended > 0 ? ((now.failed - previous.failed) / ended) * 100 : 0;
  setKpi("kpi-throughput", formatNumber(throughput, 1));
  setKpi("kpi-errors", ended > 0 ? `${errorRate.toFixed(1)} %` : "no reports ended");

  const label = new Date(now.at).toLocaleTimeString();
  push(live.labels, label);
  push(live.throughput, Number(throughput.toFixed(2)));
  push(live.errors, Number(errorRate.toFixed(1)));
  draw("rates", [...live.labels], [[...live.throughput], [...live.errors]]);
  table(
    "table-rates",
    "Throughput and error rate per 5-second interval",
    ["Time", "Reports/min", "Error rate (%)"],
    live.labels.map((t, i) => [t, live.throughput[i], live.errors[i]]),
  );
  describe(
    "chart-rates",
    `Throughput ${formatNumber(throughput, 1)} reports per minute and error rate ${errorRate.toFixed(1)} % in the last interval; ${live.labels.length} intervals shown.`,
  );

  for (const s of lagSamples) {
    const key = `${s.labels.group ?? "?"} / ${s.labels.topic ?? "?"}`;
    if (!live.lag.has(key)) live.lag.set(key, new Array(live.labels.length - 1).fill(null));
  }
  for (const [key, values] of live.lag) {
    const sample = lagSamples.find((s) => `${s.labels.group ?? "?"} / ${s.labels.topic ?? "?"}` === key);
    push(values, sample ? sample.value : null);
  }
  const chart = charts.lag;
  if (chart) {
    const keys = [...live.lag.keys()];
    chart.data.datasets = keys.map((key, i) => ({
      ...dataset(key.replace(/-agent-group/, ""), SERIES[i % SERIES.length], "line"),
      data: [...live.lag.get(key)],
    }));
    chart.data.labels = [...live.labels];
    chart.update("none");
  }
  table(
    "table-lag",
    "Consumer lag per group, latest value",
    ["Group / topic", "Lag (messages)"],
    [...live.lag.entries()].map(([key, values]) => [key, values[values.length - 1] ?? "—"]),
  );
  describe("chart-lag", `Consumer lag: ${lagTotal} messages in total across ${lagSamples.length} groups.`);
}

function push(list, value) {
  list.push(value);
  if (list.length > LIVE_POINTS) list.shift();
}

// ---------------------------------------------------------------- /api/v1/health

function showHealth(doc) {
  fill(document.getElementById("health-overall"), badge(doc.status));
  setKpi("kpi-today", formatNumber(doc.metrics?.requests_processed_today));
  const rows = Object.entries(doc.components ?? {}).map(([name, c]) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, name.replace(/_/g, " ")),
      el("td", {}, badge(c.status)),
      el("td", {}, String(c.state ?? c.backend ?? c.engine ?? "")),
      el("td", { class: "num" }, c.handled ?? "—"),
      el("td", { class: "num" }, c.dead_lettered ?? "—"),
      el("td", {}, String(c.last_error ?? c.error ?? "")),
    ),
  );
  fill(document.getElementById("health-body"), rows);
}

// ---------------------------------------------------------------- polling

async function refresh() {
  const period = periodSelect.value;
  const [metrics, prometheus, health] = await Promise.allSettled([
    api(`metrics?period=${encodeURIComponent(period)}`),
    apiFetch("/metrics", { accept: "text/plain" }).then((r) => r.text()),
    apiFetch(`${API}/health`, { alsoOk: [503] }).then((r) => r.json()),
  ]);
  if (metrics.status === "fulfilled") showMetrics(metrics.value);
  if (prometheus.status === "fulfilled") showPrometheus(prometheus.value);
  if (health.status === "fulfilled") showHealth(health.value);
  const failure = [metrics, prometheus, health].find((r) => r.status === "rejected");
  renderError(errorBox, failure ? failure.reason : null, "Some figures could not be loaded");
  if (!failure || !(failure.reason instanceof ApiError && failure.reason.isAuth)) {
    document.getElementById("updated-at").textContent = new Date().toLocaleTimeString();
  }
}

const loop = every(POLL_MS, refresh);
pauseButton.addEventListener("click", () => {
  if (loop.paused) loop.resume();
  else loop.pause();
  pauseButton.setAttribute("aria-pressed", String(loop.paused)); // pressed: paused
  document.getElementById("updated-at").textContent += loop.paused ? " (paused)" : "";
});
periodSelect.addEventListener("change", refresh);
document.getElementById("dashboard-controls").addEventListener("submit", (e) => e.preventDefault());
initPage({ reload: refresh });
if (!Chart) renderError(errorBox, new Error("The chart library (vendor/chart.umd.js) did not load."), "Charts unavailable");
