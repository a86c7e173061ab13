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
