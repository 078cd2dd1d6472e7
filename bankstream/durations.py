"""Durations as people write them: ``250ms``, ``30s``, ``10m``, ``1.5h``, ``2d``, or a bare
number of seconds (``60``). The one parser behind scenario files and every duration flag."""

from __future__ import annotations

import re
from typing import Any

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
NUMBER = r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
DURATION_RE = re.compile(rf"^\s*({NUMBER})\s*(ms|s|m|h|d)?\s*$")
MAX_SECONDS = 10 * 365 * 86400.0  # ten years


def parse_duration(value: Any) -> float:
    """``"10m"``, ``"1.5h"``, ``"250ms"``, ``"2d"``, ``"60"`` or a number of seconds -> seconds."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = DURATION_RE.match(value)
        if match:
            seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds is None:
        msg = f"expected a duration such as 30s, 10m or 1h, got {value!r}"
        raise ValueError(msg)
    if not 0 <= seconds <= MAX_SECONDS:  # also false for nan
        msg = f"expected a duration between 0 and 10 years, got {value!r}"
        raise ValueError(msg)
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds -> the largest unit that writes it exactly (``600.0`` -> ``"10m"``)."""
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        count = seconds / UNITS[unit]
        if count >= 1 and count == int(count) and int(count) * UNITS[unit] == seconds:
            return f"{int(count)}{unit}"
    millis = round(seconds * 1000)
    if seconds < 1 and millis * UNITS["ms"] == seconds:
        return f"{millis}ms"
    return f"{seconds!r}s"
