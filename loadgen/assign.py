"""Which cells a process or host takes: pure functions (locust's ``dispatch.py`` spirit).

Cells are split into contiguous ranges of about equal expected activity, so processes and hosts
share the work (and the rate) evenly, and N hosts with ``--shard 0/N .. N-1/N`` together send
exactly the cells of one run.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadgen.errors import LoadgenUsageError


def parse_cells(text: str | None, cells: int) -> range:
    """``"a-b"`` (inclusive) or ``"a"`` -> the cells; all of them for None."""
    if text is None:
        return range(cells)
    low_text, dash, high_text = text.strip().partition("-")
    if not low_text.isdigit() or (dash and not high_text.isdigit()) or len(text) > 40:
        msg = f"--cells expects A-B (e.g. 0-127) or one cell, got {text[:40]!r}"
        raise LoadgenUsageError(msg)
    low = int(low_text)
    high = int(high_text) if dash else low
    if low > high:
        msg = f"--cells {text}: the first cell is after the last (did you mean {high}-{low}?)"
        raise LoadgenUsageError(msg)
    if low < 0 or high >= cells:
        msg = f"--cells {text}: this scenario has cells 0-{cells - 1}"
        raise LoadgenUsageError(msg)
    return range(low, high + 1)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), 0 <= I < N."""
    index_text, slash, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index = count = -1
    if not slash or count < 1 or not 0 <= index < count:
        msg = (
            f"--shard expects I/N with 0 <= I < N (host I of N, e.g. 0/4 .. 3/4), got {text[:40]!r}"
        )
        raise LoadgenUsageError(msg)
    return index, count


def split(cells: Sequence[int], activity: Sequence[float], parts: int) -> list[range]:
    """``cells`` (consecutive) cut into ``parts`` contiguous ranges of about equal activity
    (``activity[c]`` of cell c); a range may be empty when there are more parts than cells."""
    if parts < 1:
        msg = "parts must be at least 1"
        raise ValueError(msg)
    cells = list(cells)
    if not cells:
        return [range(0) for _ in range(parts)]
    first = cells[0]
    weights = [max(activity[c], 0.0) for c in cells]
    total = sum(weights) or float(len(cells))
    if not sum(weights):
        weights = [1.0] * len(cells)
    bounds = [0]
    running = 0.0
    k = 1
    for i, w in enumerate(weights):
        # a cut falls after the cell whose running total is closest to k/parts of the whole
        while k < parts and running + w / 2 >= total * k / parts:
            bounds.append(i)
            k += 1
        running += w
    while len(bounds) < parts:
        bounds.append(len(cells))
    bounds.append(len(cells))
    return [range(first + bounds[j], first + bounds[j + 1]) for j in range(parts)]
