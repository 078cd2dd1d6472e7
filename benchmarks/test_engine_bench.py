"""Engine throughput, start-up and memory, on the path users run. Run with `make bench`; the
figures land in the benchmark report (``extra_info``), never in asserts: this machine is shared
and noisy, so compare ratios measured in one run.

- ``all_cells``: what `bankstream generate retail-day --events N` does: every cell, merged in time
  order, serialised to bytes. Events per CPU-second of the process.
- ``half_the_cells``: one producer process's share when two share a run.
- ``one_dense_cell``: one cell alone, once built: the engine's best case, for reference.
- ``start_up``: from the scenario to all its cells built; ``first_batch``: to the first batch of
  events (every cell's first span drawn).
- ``process_peak``: resident memory of a whole `generate` process (a child process).
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from loadgen.engine import CellStream
from loadgen.model import EngineModel
from loadgen.population import build_cell
from loadgen.stream import RunStream, plan
from scenarios import load


def _events(benchmark: Any, timed: int, untimed: int) -> int:
    """A real size when timed, a small one when the benchmarks only run as tests."""
    return untimed if benchmark.disabled else timed


def _model(name: str, *overrides: str) -> EngineModel:
    loaded = load(name, overrides=list(overrides), environ={})
    return EngineModel.build(loaded.scenario, loaded.digest)


def _serialise(cells: str | None, events: int, cpu: list[float]) -> int:
    """One run of the real path: plan, every batch of ``cells`` merged and encoded."""
    began = time.process_time()
    run = plan(load("retail-day", environ={}), events=events, cells=cells)
    size = 0
    for batch in RunStream(run).batches():
        size += len(batch.data)
    cpu.append(time.process_time() - began)
    return size


def _report(benchmark: Any, events: int, cpu: list[float]) -> None:
    benchmark.extra_info["events"] = events
    if benchmark.stats is not None:  # None when benchmarks only run as tests
        seconds = statistics.median(cpu)
        benchmark.extra_info["cpu_seconds_median"] = round(seconds, 3)
        benchmark.extra_info["events_per_cpu_second"] = round(events / seconds)


def test_generate_all_cells_of_retail_day(benchmark: Any) -> None:
    """The real path: all 256 cells of retail-day (100,000 customers), merged in time order,
    serialised (1,000,000 events, about four simulated days)."""
    events = _events(benchmark, 1_000_000, 20_000)
    cpu: list[float] = []
    size = benchmark.pedantic(_serialise, args=(None, events, cpu), rounds=3, iterations=1)
    assert size > 600 * events
    _report(benchmark, events, cpu)


def test_generate_half_the_cells_of_retail_day(benchmark: Any) -> None:
    """One worker's share when two processes share a run: cells 0-127 of a 1,000,000-event run."""
    events = _events(benchmark, 1_000_000, 20_000)
    run = plan(load("retail-day", environ={}), events=events, cells="0-127")
    own = run.own_events or 0
    cpu: list[float] = []
    size = benchmark.pedantic(_serialise, args=("0-127", events, cpu), rounds=3, iterations=1)
    assert size > 600 * own
    _report(benchmark, own, cpu)


def test_one_dense_cell_for_reference(benchmark: Any) -> None:
    """One cell of retail-day alone, once built (the engine's best case: no merging)."""
    events = _events(benchmark, 100_000, 5_000)
    model = _model("retail-day")
    cpu: list[float] = []

    def fresh() -> tuple[tuple[CellStream], dict[str, Any]]:
        return (CellStream(model, 7, events),), {}

    def run(stream: CellStream) -> int:
        began = time.process_time()
        made = sum(len(chunk) for chunk in stream.chunks())
        cpu.append(time.process_time() - began)
        return made

    produced = benchmark.pedantic(run, setup=fresh, rounds=5, iterations=1, warmup_rounds=1)
    assert produced == events
    _report(benchmark, events, cpu[1:] or cpu)


def test_start_up_of_retail_day(benchmark: Any) -> None:
    """From the loaded scenario to its cells built: the preflight, 256 cells of 100,000
    customers (target under 1 s)."""
    loaded = load("retail-day", environ={})

    def build() -> int:
        stream = RunStream(plan(loaded, events=1_000_000))
        stream.build()
        return len(stream.cells)

    assert benchmark.pedantic(build, rounds=3, iterations=1) == 256


def test_first_batch_of_retail_day(benchmark: Any) -> None:
    """From the loaded scenario to the first batch of events: the cells built, and each one's
    first span of rows drawn (about 2,000 rows a cell, half of a 1,000,000-event run) so that
    the first window can be merged in time order."""
    loaded = load("retail-day", environ={})

    def first_batch() -> int:
        run = plan(loaded, events=1_000_000)
        return len(next(iter(RunStream(run).batches())))

    assert benchmark.pedantic(first_batch, rounds=3, iterations=1) > 0


def test_process_peak_of_generate(benchmark: Any) -> None:
    """Peak resident memory of a whole `bankstream generate retail-day` process (1,000,000 and
    3,000,000 events when timed; the target is under 500 MB at any count)."""
    counts = (20_000,) if benchmark.disabled else (1_000_000, 3_000_000)
    peaks = {}

    def generate() -> None:
        for events in counts:
            # a fresh parent with this one child: its RUSAGE_CHILDREN peak is the child's alone
            done = subprocess.run(
                [sys.executable, "-c", PEAK_OF_CHILD, sys.executable, "-m", "bankstream"]
                + ["generate", "retail-day", "--events", str(events), "-q", "-o", os.devnull],
                check=True,
                capture_output=True,
                text=True,
            )
            peaks[events] = float(done.stdout) / 1024

    benchmark.pedantic(generate, rounds=1, iterations=1)
    for events, peak in peaks.items():
        benchmark.extra_info[f"peak_mb_{events}"] = round(peak, 1)
    over = {events: round(peak) for events, peak in peaks.items() if peak >= PEAK_TARGET_MB}
    assert not over, f"generate's peak (MiB, by events) is over its {PEAK_TARGET_MB} MB: {over}"


PEAK_TARGET_MB = 500  # a whole `generate` process, at any count

PEAK_OF_CHILD = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _rss_mb() -> float:
    """The process's resident memory now (Linux), MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_state_of_one_million_accounts(benchmark: Any) -> None:
    """Memory held by the cell states of 1,000,000 checking accounts in one process (10,000 when
    the benchmarks only run as tests), with the credit and prepaid card accounts their holders
    have besides: resident memory before and after building them all."""
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
    checking = sum(c.n_bank for c in cells)
    accounts = sum(c.size for c in cells)
    assert checking == accounts_wanted
    del cells
    gc.collect()
    benchmark.extra_info["checking_accounts"] = checking
    benchmark.extra_info["accounts"] = accounts
    benchmark.extra_info["state_mb"] = round(held, 1)
    benchmark.extra_info["process_max_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    benchmark.pedantic(lambda: build_cell(model, 0), rounds=3, iterations=1)
