"""A faulted run's figures: each fault's window and recovery, and the latency and lag outside
the fault windows (where the thresholds are judged, unless ``--judge-latency whole-run``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bankstream.histogram import LogHistogram
from harness.faults import outside, recovery
from harness.orchestrate import Observed
from harness.result import latency_figures

SETTLE = 5.0  # seconds a recovery must hold (longer than Kafka takes to see a partition stall)


def fault_figures(
    observed: Observed, fields: Sequence[str], warmup: float, judge_outside: bool = True
) -> dict[str, Any]:
    rows = [row.as_list() for row in observed.timeline]
    end_of_run = float(rows[-1][fields.index("t")]) if rows else 0.0
    injected = []
    windows: list[tuple[float, float]] = []
    worst: float | None = 0.0
    for record in observed.faults:
        item = dict(record)
        started = record.get("started")
        if started is None or record.get("problem"):  # never injected, or not as asked
            item["recovery_seconds"] = None  # nothing to recover from: the run's problem
            injected.append(item)
            continue
        ended = float(record.get("ended", started))
        took, lag = recovery(rows, fields, float(started), ended, SETTLE)
        item["recovery_seconds"] = None if took is None else round(took, 1)
        item["max_lag_seconds"] = round(lag, 2)
        injected.append(item)
        # the window and its recovery, with the seconds that confirmed it (the backlog's last
        # writes land in them)
        end = ended + took + SETTLE if took is not None else end_of_run
        windows.append((float(started), end))
        if took is None:
            worst = None
        elif worst is not None:
            worst = max(worst, took)
    delivery, e2e = LogHistogram(), LogHistogram()
    lag_i, t_i = fields.index("lag_seconds"), fields.index("t")
    for t, d, e in observed.ticks:
        if t >= warmup and outside(windows, t):
            delivery.merge(d)
            e2e.merge(e)
    lags = [float(r[lag_i] or 0.0) for r in rows if r[t_i] >= warmup and outside(windows, r[t_i])]
    return {
        "injected": injected,
        "windows": [[round(a, 1), round(b, 1)] for a, b in windows],
        # the longest recovery; None when one did not recover before the run ended
        "recovery_seconds": round(worst, 1) if worst is not None and windows else None,
        "recovered": worst is not None,
        "judged_outside": judge_outside,
        "outside": {
            "delivery": latency_figures(delivery),
            "end_to_end": latency_figures(e2e),
            "max_lag_seconds": max(lags, default=0.0),
            "histograms": {"delivery": delivery.to_dict(), "end_to_end": e2e.to_dict()},
        },
    }
