"""Whether a run fits the local in-memory MongoDB-wire server, asked before its load starts.

That server keeps every document and index on its Java heap: about ``EVENT_BYTES`` per stored
event with the sink's indexes and projections (6 GB holds about a million). Past ``USABLE`` of
the heap it collects garbage most of the time, and the sink sees a store that does not write. A
run that cannot fit is refused before anything starts (the bundled ``soak``, an hour at 2,000/s,
does not fit the default 6g); one that nearly fills it is warned about.
"""

from __future__ import annotations

from bankstream.durations import format_duration
from bankstream.errors import UsageError

EVENT_BYTES = 5_000  # heap per stored event, the sink's indexes, accounts and rollups included
USABLE = 0.85  # of the heap; beyond it the server spends its time collecting garbage
WARN = 0.80  # of the usable room: a run that fills more is warned about


def capacity(heap: int) -> int:
    """Events a heap of ``heap`` bytes holds."""
    return int(heap * USABLE / EVENT_BYTES)


def check(
    heap: int,
    stored: int,
    events: int | None,
    rate: float | None,
    scenario: str,
    fresh: bool,
) -> str | None:
    """UsageError (one line: what fits, what to do) when ``events`` more do not fit beside the
    ``stored`` ones (none with ``fresh``); a warning when they fill more than ``WARN`` of the
    room; None when they fit well or their number is not known in advance (``rate: max`` for a
    duration)."""
    if events is None:
        return None
    room = capacity(heap)
    kept = 0 if fresh else stored
    free = max(0, room - kept)
    heap_text = f"{heap / 2**30:.3g} GiB" if heap >= 2**30 else f"{heap / 2**20:.0f} MiB"
    where = (
        f"the local in-memory MongoDB-wire server ({heap_text} of heap) holds about {room:,} events"
    )
    if kept:
        where += f", {kept:,} of them stored now"
    if events > free:
        fits = f"{free:,} more"
        if rate:
            seconds = free / rate
            seconds = 60 * (seconds // 60) if seconds >= 120 else round(seconds)
            fits += f" ({format_duration(seconds)} at {rate:,.0f}/s)"
        fresh_hint = "add --fresh to drop what is stored, " if kept else ""
        msg = (
            f"{scenario} sends {events:,} events and {where}: {fits} fit; {fresh_hint}give "
            "--duration or --events within that, give the store more heap "
            "(BANKSTREAM_MONGO_HEAP, then `bankstream stack down` and `up`), or run against "
            "real MongoDB (docker-compose.yml's mongo, BANKSTREAM_MONGO_URI)"
        )
        raise UsageError(msg)
    if kept + events > WARN * room:
        share = (kept + events) / room
        return (
            f"warning: {scenario} sends {events:,} events and {where}: the run fills "
            f"{share:.0%} of it, and the store slows down as it fills"
        )
    return None
