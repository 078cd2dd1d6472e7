"""Engine throughput and memory. Run with `make bench`; figures land in the benchmark report
(``extra_info``), never in asserts: this machine is shared and noisy."""

from __future__ import annotations

import gc
import os
import resource
from typing import Any

from loadgen.calendar import Clock
from loadgen.engine import CellStream
from loadgen.model import EngineModel
from loadgen.population import build_cell
from scenarios import load

EVENTS = 100_000


def _model(name: str, *overrides: str) -> EngineModel:
    loaded = load(name, overrides=list(overrides), environ={})
    return EngineModel.build(loaded.scenario, loaded.digest)


def test_generate_and_serialise_retail_day_one_core(benchmark: Any) -> None:
    """Events generated and serialised (JSON text) per second, one process, one core, once the
    cell's accounts exist (building them is timed by the memory benchmark's rounds)."""
    model = _model("retail-day")
    clock = Clock(model.scenario)

    def fresh() -> tuple[tuple[CellStream], dict[str, Any]]:
        return (CellStream(model, 7, clock),), {}

    def run(stream: CellStream) -> int:
        return sum(len(chunk) for chunk in stream.chunks(EVENTS))

    produced = benchmark.pedantic(run, setup=fresh, rounds=7, iterations=1, warmup_rounds=1)
    assert produced == EVENTS
    benchmark.extra_info["events"] = EVENTS
    if benchmark.stats is not None:  # None when benchmarks only run as tests
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["events_per_second_median"] = round(EVENTS / seconds)


def _rss_mb() -> float:
    """The process's resident memory now (Linux), MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_state_of_one_million_accounts(benchmark: Any) -> None:
    """Memory held by the cell states of 1,000,000 accounts in one process (10,000 when the
    benchmarks only run as tests): resident memory before and after building them all."""
    accounts_wanted = 10_000 if benchmark.disabled else 1_000_000
    model = _model(
        "retail-day",
        f"population.customers={accounts_wanted}",
        "population.accounts_per_customer=[1]",
    )

    def build() -> list[Any]:
        return [build_cell(model, cell) for cell in range(model.cells)]

    gc.collect()
    before = _rss_mb()
    cells = build()
    gc.collect()
    held = _rss_mb() - before
    accounts = sum(c.size for c in cells)
    assert accounts == accounts_wanted
    del cells
    gc.collect()
    benchmark.extra_info["accounts"] = accounts
    benchmark.extra_info["state_mb"] = round(held, 1)
    benchmark.extra_info["process_max_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    benchmark.pedantic(lambda: build_cell(model, 0), rounds=3, iterations=1)
