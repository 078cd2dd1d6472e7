"""The producer against its ceiling on the real broker. Run with `make bench`; figures land in
the report (``extra_info``), never in asserts. `python -m benchmarks.producer_vs_ceiling` runs
the alternating comparison (A B A B) with medians."""

from __future__ import annotations

from typing import Any

import pytest

from bankstream.settings import Settings
from benchmarks import ceiling
from benchmarks.producer_vs_ceiling import produce
from scenarios import load

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("processes", [1, 2])
def test_produce_max_throughput_against_the_ceiling(
    benchmark: Any, stack: Settings, processes: int
) -> None:
    """`bankstream produce max-throughput --rate max`, and the raw client sending the same
    payloads and keys with the same settings, one after the other on the same broker."""
    if benchmark.disabled and processes > 1:
        pytest.skip("run as a test, one process shows the benchmark works (make bench runs both)")
    events = 5_000 if benchmark.disabled else 200_000
    loaded = load("max-throughput", environ={})
    keys, values = ceiling.payloads(loaded, events)
    rates: dict[str, float] = {}

    def pair() -> None:
        rates["ceiling"] = ceiling.run(stack, loaded, keys, values, processes)["rate"]
        rates["produce"] = produce("max-throughput", events, processes)

    benchmark.pedantic(pair, rounds=1, iterations=1)
    assert rates["produce"] > 0 and rates["ceiling"] > 0
    benchmark.extra_info.update(
        events=events,
        processes=processes,
        ceiling_events_per_second=round(rates["ceiling"]),
        produce_events_per_second=round(rates["produce"]),
        ratio=round(rates["produce"] / rates["ceiling"], 3),
    )
