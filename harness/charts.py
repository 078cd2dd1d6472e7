"""PNG charts of a run's timeline: throughput, lag, latency percentiles over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def draw(result: Mapping[str, Any], folder: Path) -> list[str]:
    """Write the charts next to the result; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields: Sequence[str] = result["timeline_fields"]
    rows = result["timeline"]
    if not rows:
        return []
    col = {name: [r[i] for r in rows] for i, name in enumerate(fields)}
    t = col["t"]
    warmup = float(result["warmup_seconds"])
    names = []

    faults = (result["figures"].get("faults") or {}).get("injected", [])

    def finish(fig: Any, ax: Any, name: str, title: str) -> None:
        if warmup > 0:
            ax.axvspan(0, warmup, color="0.9", label="warm-up (excluded)")
        for i, f in enumerate(faults):  # each fault's window, then its recovery
            if f.get("started") is None:
                continue
            start, end = float(f["started"]), float(f.get("ended", f["started"]))
            label = "fault" if i == 0 else None
            ax.axvspan(start, max(end, start + 0.5), color="tab:red", alpha=0.25, label=label)
            if f.get("recovery_seconds") is not None:
                back = end + float(f["recovery_seconds"])
                ax.axvspan(
                    end, back, color="tab:orange", alpha=0.15, label="recovery" if i == 0 else None
                )
        ax.set_xlabel("seconds since the producer started")
        ax.set_title(f"{result['run_id']}: {title}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=100)
        plt.close(fig)
        names.append(name)

    fig, ax = plt.subplots(figsize=(9, 4))
    if any(v is not None for v in col["target_rate"]):
        ax.plot(t, [v or 0 for v in col["target_rate"]], "k--", label="target", linewidth=1)
    ax.plot(t, col["produce_rate"], label="produced (acked)")
    ax.plot(t, col["sink_rate"], label="written to MongoDB")
    ax.set_ylabel("events / s")
    finish(fig, ax, "throughput.png", "throughput")

    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, col["lag"], label="lag (messages)", color="tab:red")
    ax.set_ylabel("messages")
    other = ax.twinx()
    other.plot(t, col["lag_seconds"], label="lag (seconds)", color="tab:purple", linewidth=1)
    other.set_ylabel("seconds")
    finish(fig, ax, "lag.png", "consumer lag")

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, label in (
        ("delivery_p50", "delivery p50"),
        ("delivery_p99", "delivery p99"),
        ("e2e_p50", "end-to-end p50"),
        ("e2e_p99", "end-to-end p99"),
    ):
        points = [(x, v * 1000) for x, v in zip(t, col[name], strict=True) if v is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label)
    ax.set_yscale("log")
    ax.set_ylabel("ms (each second's percentiles)")
    finish(fig, ax, "latency.png", "latency percentiles over time")
    return names


def capacity(steps: Sequence[Mapping[str, Any]], found: float | None, path: Path) -> None:
    """Latency against throughput for the steps of a capacity search, the knee marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    done = [s for s in steps if s.get("achieved") is not None]
    for key, label in (("e2e_p50", "end-to-end p50"), ("e2e_p99", "end-to-end p99")):
        pts = sorted((s["achieved"], s[key] * 1000) for s in done if s.get(key) is not None)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
    for s in done:
        ax.annotate(
            "pass" if s["passed"] else "fail",
            (s["achieved"], (s.get("e2e_p99") or 0) * 1000),
            fontsize=7,
        )
    if found:
        ax.axvline(found, color="k", linestyle="--", label=f"highest passing: {found:,.0f}/s")
    ax.set_xlabel("achieved events / s")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("latency vs throughput", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
