"""The latency PNG: ingest percentiles beside the ceiling, end-to-end distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def latency_png(figures: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if "ingest" in figures:
        ax = axes[0]
        qs = ["p50", "p75", "p90", "p95", "p99", "p99_9"]
        for name, label in (("ceiling", "no-op FastAPI ceiling"), ("service", "ai-pipeline")):
            run = figures["ingest"][name]
            ax.plot(
                qs,
                [run["latency_ms"][q] for q in qs],
                marker="o",
                label=f"{label} ({run['rps']:.0f} req/s)",
            )
        ax.axhline(30, color="red", linestyle=":", label="p99 target 30 ms")
        ax.set_title("Ingest latency by percentile (wrk, median round)")
        ax.set_ylabel("ms")
        ax.legend()
    if "e2e" in figures:
        ax = axes[1]
        times = [t * 1000 for t in figures["e2e"]["samples"]["processing_seconds"]]
        if times:
            ax.hist(times, bins=60, color="tab:green", alpha=0.8)
            for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
                value = figures["e2e"]["processing_seconds"][q] * 1000
                ax.axvline(value, color="black", linestyle=style, label=f"{q} {value:.0f} ms")
            ax.legend()
        ax.set_title(f"Submit → issue filed at {figures['e2e']['rate']:.0f}/s")
        ax.set_xlabel("ms")
        ax.set_ylabel("reports")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def distributed_png(d: dict[str, Any], path: Path) -> Path:
    """Time to issue at a fixed rate (histogram), and the burst's drain curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    rate = d["at_rate"]
    times = rate["samples"]["time_to_issue"]
    if times:
        left.hist(times, bins=60, color="tab:blue", alpha=0.8)
        for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            value = rate["time_to_issue_seconds"][q]
            left.axvline(value, color="black", linestyle=style, label=f"{q} {value:.2f} s")
        left.axvline(2.0, color="red", linestyle=":", label="p95 target 2 s")
        left.legend()
    left.set_title(f"Kafka + Redis: submit → issue at {rate['rate']:.0f}/s, 3 triage agents")
    left.set_xlabel("seconds")
    for key, label in (("burst", "burst, 3 agents"),):
        offsets = d[key]["samples"]["completion_offsets"]
        right.plot(offsets, range(1, len(offsets) + 1), label=label)
    for agents in (1, 3):
        run = d[f"triage_agents_{agents}"]["saturated"]
        offsets = run["samples"]["completion_offsets"]
        right.plot(offsets, range(1, len(offsets) + 1), label=f"saturated, {agents} agent(s)")
    right.axvline(60, color="red", linestyle=":", label="burst target 60 s")
    right.set_title("Issues filed over time")
    right.set_xlabel("seconds since the first submission")
    right.set_ylabel("issues filed")
    right.legend()
    return _save(fig, path, 110)


def triage_png(t: dict[str, Any], path: Path) -> Path:
    """Time per report through the triage agent (10,000 indexed), per layout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(figsize=(7, 4))
    for key, value in t.items():
        if key.startswith("one_process"):
            axes.hist(value["samples"]["ms"], bins=60, alpha=0.6, label=key.replace("_", " "))
    axes.axvline(20, color="red", linestyle=":", label="50 reports/s in one process")
    axes.set_xlabel("ms per report (embedding, duplicate search, models, rules)")
    axes.set_ylabel("reports")
    axes.set_title("Local triage against a 10,000-report index")
    axes.legend()
    return _save(fig, path, 100)


def _save(fig: Any, path: Path, dpi: int) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


COST_PHASES = (
    ("triage_agents_1", "saturated, 1 triage agent"),
    ("triage_agents_3", "saturated, 3 triage agents"),
    ("at_rate", "open loop, 3 agents"),
    ("burst", "burst, 3 agents"),
)


def cost_phases(d: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, cost) of each distributed phase that measured one."""
    found = []
    for key, label in COST_PHASES:
        run = d.get(key, {})
        run = run.get("saturated", run)
        if "cost" in run:
            found.append((label, run["cost"]))
    return found


def cost_png(d: dict[str, Any], path: Path) -> Path:
    """CPU milliseconds per report, stacked by process, for each distributed phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = cost_phases(d)
    names = sorted({n for _, c in phases for n in c["cpu_ms_per_report"]})
    fig, axes = plt.subplots(figsize=(10, 5))
    bottoms = [0.0] * len(phases)
    for name in names:
        values = [c["cpu_ms_per_report"].get(name, 0.0) for _, c in phases]
        axes.bar([label for label, _ in phases], values, bottom=bottoms, label=name)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    axes.axhline(12, color="red", linestyle=":", label="target 12 ms (service processes)")
    axes.set_ylabel("CPU ms per report")
    axes.set_title("What a report costs, by process (Kafka + Redis deployment, /proc)")
    axes.legend(fontsize=8, ncol=2)
    return _save(fig, path, 100)
