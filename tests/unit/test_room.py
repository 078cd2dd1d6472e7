"""A run the local in-memory store cannot hold is refused before it starts; one that nearly
fills it is warned about; the size of the heap comes from the running server's -Xmx."""

from __future__ import annotations

import pytest

from bankstream.errors import UsageError
from bankstream.stack.lifecycle import _bytes
from harness.room import EVENT_BYTES, USABLE, capacity, check

SIX_G = 6 * 2**30


def test_the_soak_scenario_does_not_fit_the_default_heap_and_the_line_says_what_fits() -> None:
    with pytest.raises(UsageError) as caught:
        check(SIX_G, 0, 7_200_000, 2000.0, "soak", fresh=True)
    line = str(caught.value)
    assert "\n" not in line
    room = capacity(SIX_G)
    assert room == int(SIX_G * USABLE / EVENT_BYTES)
    assert f"holds about {room:,} events" in line and f"{room:,} more" in line
    assert "(9m at 2,000/s)" in line  # 1,095,216 events at 2,000/s: 547 s
    assert "BANKSTREAM_MONGO_HEAP" in line and "--fresh" not in line


def test_what_is_stored_counts_unless_the_run_drops_it() -> None:
    room = capacity(SIX_G)
    assert check(SIX_G, room - 1000, 500, 100.0, "x", fresh=False) is not None  # a warning
    with pytest.raises(UsageError, match="add --fresh to drop what is stored"):
        check(SIX_G, room - 1000, 5000, 100.0, "x", fresh=False)
    assert check(SIX_G, room - 1000, 5000, 100.0, "x", fresh=True) is None


def test_a_run_that_fills_most_of_it_is_warned_about_and_a_small_one_passes() -> None:
    room = capacity(SIX_G)
    warning = check(SIX_G, 0, int(room * 0.9), 2000.0, "retail-day", fresh=True)
    assert warning is not None and warning.startswith("warning:") and "90%" in warning
    assert check(SIX_G, 0, room // 2, 2000.0, "retail-day", fresh=True) is None
    assert check(SIX_G, 0, None, None, "max-throughput", fresh=True) is None  # unknown count


@pytest.mark.parametrize(
    ("text", "size"),
    [("6g", SIX_G), ("512m", 512 * 2**20), ("2G", 2 * 2**30), ("1048576", 2**20), ("x", None)],
)
def test_java_heap_sizes_are_read_as_java_reads_them(text: str, size: int | None) -> None:
    assert _bytes(text) == size


def test_the_report_says_how_full_the_local_store_is_and_warns_above_80_percent() -> None:
    from harness.result import _store_line

    store = {"heap_bytes": SIX_G, "heap_used_bytes": 2**30, "room_events": 1_000_000}
    (line,) = _store_line({**store, "stored_events": 500_000, "fill": 0.5})
    assert "500,000 events of about 1,000,000" in line and "50% full" in line
    assert "heap in use 1.00 of 6.00 GiB" in line and "over 80%" not in line
    (line,) = _store_line({**store, "stored_events": 900_000, "fill": 0.9, "heap_used_bytes": None})
    assert "90% full (over 80%" in line and "heap in use" not in line
    assert _store_line(None) == []
