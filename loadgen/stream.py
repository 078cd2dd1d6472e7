"""The one entry point for a run's events: ``plan()`` checks a run before anything starts, then
``RunStream`` yields its events, merged from its cells in time order.

``bankstream generate``, the producer's workers, the benchmarks and the tests all take their
events from here, so they see the same bytes for the same scenario, seed and cells.

Order: events are merged by (time in the cell's stream, cell, position in the cell), a total
order that does not depend on which cells a process holds, so the events of a subset of the cells
come out in the order they have in the whole run. A cell's chunk covers its simulated slots up to
some time; once every cell has gone past a time, the events before it are final and go out
(sorted with numpy, a batch at a time: no per-event heap).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bankstream.events import TX_TYPES, TYPOLOGIES
from loadgen.assign import parse_cells
from loadgen.calendar import HOUR
from loadgen.chunk import Chunk
from loadgen.engine import CellStream, quotas
from loadgen.errors import LoadgenUsageError
from loadgen.fraud import MAX_IN_FLIGHT, in_flight
from loadgen.model import EngineModel
from loadgen.native import gather, values
from loadgen.pacing import Schedule
from loadgen.population import cell_activity
from loadgen.simtime import check_fit, intensity
from scenarios import LoadedScenario

BATCH = 32_768  # events merged and handed out at a time (about)
MAX_WINDOW_HOURS = 24 * 7  # simulated time merged at a time, at most
MAX_EVENTS = 10**12
BYTES_PER_ACCOUNT = 500  # a cell's state, ledger and texts (measured: ~450)
BYTES_PER_CELL = 2**20  # rows drawn ahead, tables
KEEP_CUSTOMERS = 2_000_000  # populations this small keep the customers drawn for the plan


@dataclass(frozen=True)
class Plan:
    """A run checked before anything starts: what a process makes of it and when."""

    loaded: LoadedScenario
    model: EngineModel
    cells: range  # the cells this process (or host) makes
    events: int | None  # events of the whole run (every cell); None: until stopped
    schedule: Schedule  # the whole run's schedule (rate: max -> not paced)
    share: float  # this process's part of the run's expected activity (0..1]
    quotas: tuple[int, ...] | None  # events of each cell of the model; None: until stopped

    @property
    def own_events(self) -> int | None:
        """Events of this process's cells."""
        return None if self.quotas is None else sum(self.quotas[c] for c in self.cells)

    @property
    def own_schedule(self) -> Schedule:
        """This process's schedule: its share of the run's rate."""
        return self.schedule.scaled(self.share)


def plan(
    loaded: LoadedScenario,
    *,
    events: int | None = None,
    cells: str | Sequence[int] | None = None,
    run_id: str | None = None,
    schedule: Schedule | None = None,
) -> Plan:
    """Check a run and say what it is, or raise :class:`LoadgenUsageError` (exit code 2) before
    any output is opened or any process starts.

    ``events``: how many in the whole run (default: the load's count, if it has one);
    ``cells``: this process's cells (``"A-B"``, a sequence, or all of them); ``schedule``: the
    load's (default: the scenario's ``load``)."""
    scenario = loaded.scenario
    model = EngineModel.build(scenario, loaded.digest, run_id)
    if isinstance(cells, str) or cells is None:
        chosen = parse_cells(cells, model.cells)
    else:
        chosen = range(0)
        if len(cells):
            chosen = range(min(cells), max(cells) + 1)
            if list(cells) != list(chosen):
                msg = "cells must be consecutive"
                raise LoadgenUsageError(msg)
            if chosen.start < 0 or chosen.stop > model.cells:
                msg = f"cells {chosen.start}-{chosen.stop - 1}: this scenario has cells 0-"
                msg += f"{model.cells - 1}"
                raise LoadgenUsageError(msg)
    if schedule is None:
        schedule = Schedule.of_load(scenario.load)
    if events is None:
        events = schedule.total
    if events is not None and not 0 < events <= MAX_EVENTS:
        got = (
            f"{events:,}" if abs(events) < 10**24 else f"a number of {len(str(abs(events)))} digits"
        )
        msg = f"the number of events must be between 1 and {MAX_EVENTS:,}, got {got}"
        raise LoadgenUsageError(msg)
    _check_memory(model, chosen)
    check_fit(model, schedule)
    activity = model.cell_activity(cell_activity)
    small = scenario.population.customers <= KEEP_CUSTOMERS
    for cell in range(model.cells):  # customers drawn for the activity, kept for building
        if cell not in chosen or not small:
            model.cache.pop(("customers", cell), None)
    total = sum(activity)
    share = sum(activity[c] for c in chosen) / total if total > 0 else 0.0
    _check_fraud_density(model, activity)
    share_of = None if events is None else tuple(quotas(model, events))
    return Plan(loaded, model, chosen, events, schedule, share, share_of)


def _check_memory(model: EngineModel, cells: range) -> None:
    """Refuse, before drawing anyone, a population whose cells would not fit in this machine's
    memory (about BYTES_PER_ACCOUNT an account, measured)."""
    pop = model.population
    weights = np.asarray(pop.accounts_per_customer, dtype=np.float64)
    per_customer = float((weights / weights.sum() * np.arange(1, len(weights) + 1)).sum())
    accounts = pop.customers * len(cells) / model.cells * per_customer
    need = accounts * BYTES_PER_ACCOUNT + len(cells) * BYTES_PER_CELL
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not on this system: no check
        return
    if need > 0.8 * memory:
        msg = (
            f"{model.scenario_name}: cells {cells.start}-{cells.stop - 1} hold about "
            f"{accounts:,.0f} accounts, about {need / 2**30:,.1f} GiB, more than this machine's "
            f"{memory / 2**30:,.1f} GiB can hold: give fewer --cells, share them between hosts "
            "(--shard), or lower population.customers"
        )
        raise LoadgenUsageError(msg)


def _check_fraud_density(model: EngineModel, activity: Sequence[float]) -> None:
    """The fraud in flight when a cell's stream starts is drawn up front: refuse a scenario
    whose densest cell would hold more instances than fit in memory."""
    if not model.anomalies.typologies:
        return
    legs = 1.0 + model.inside_share
    worst = in_flight(model, max(activity) / 24.0 * legs)
    if worst > MAX_IN_FLIGHT:
        factor = worst / MAX_IN_FLIGHT
        msg = (
            f"{model.scenario_name}: too dense for its fraud: a cell would start with about "
            f"{worst:,.0f} fraud instances in flight; lower the fraud rates at least "
            f"{factor:.2g}-fold or make instances shorter (typology windows)"
        )
        raise LoadgenUsageError(msg)


def _window(model: EngineModel, per_hour: float, since: int, size: int) -> int:
    """The end (epoch ms) of a window from ``since`` in which about ``size`` events are expected
    of cells making ``per_hour`` events an hour on average (by the hour and weekday curves,
    spikes and salaries; at most MAX_WINDOW_HOURS)."""
    origin = model.clock.origin
    x = max(0.0, (since / 1000.0 - origin) / HOUR)  # hours from the origin
    hour = int(x)
    cum = intensity(model, hour + MAX_WINDOW_HOURS + 2)
    want = cum[hour] + (cum[hour + 1] - cum[hour]) * (x - hour) + size / max(per_hour, 1e-9)
    end = int(np.searchsorted(cum, want, side="left"))  # hour [end - 1, end) reaches it
    if end > hour + MAX_WINDOW_HOURS or end >= len(cum):
        moment = x + MAX_WINDOW_HOURS
    else:
        within = cum[end] - cum[end - 1]
        moment = end - 1 + ((want - cum[end - 1]) / within if within > 0 else 1.0)
    return max(since + 1, math.floor((origin + moment * HOUR) * 1000.0))


@dataclass
class Batch:
    """Events in run order: their Kafka keys and times (epoch ms), and where their JSON texts are
    (the cells' buffers, untouched until asked for: ``data`` gathers them as JSON lines,
    ``render`` with their send times)."""

    key_parts: tuple[list[str], ...]  # the cells' keys, in cell order (see ``keys``)
    order: NDArray[np.int64] | None  # event i's key: the order[i]-th of key_parts (None: i-th)
    times: NDArray[np.int64]
    types: NDArray[np.uint8]  # type codes (positions in the contract's TX_TYPES)
    first: int  # how many events of this stream came before the batch
    parts: tuple[bytes, ...]
    part: NDArray[np.int64]  # event i is parts[part[i]][start[i] : start[i] + length[i]]
    start: NDArray[np.int64]
    length: NDArray[np.int64]
    _data: bytes | None = None
    _keys: list[str] | None = None

    def __len__(self) -> int:
        return len(self.times)

    @property
    def keys(self) -> list[str]:
        """The events' Kafka keys (their accounts), put in run order when first asked for: a
        file of events never needs them."""
        if self._keys is None:
            keys = list(chain.from_iterable(self.key_parts))
            if self.order is not None:
                keys = [keys[j] for j in self.order.tolist()]
            self._keys = keys
        return self._keys

    @property
    def data(self) -> bytes:
        """The events as JSON lines (each followed by a newline)."""
        if self._data is None:
            self._data = gather(self.parts, self.part, self.start, self.length)[0]
        return self._data

    def render(self, send_ms: NDArray[np.int64] | None) -> tuple[bytes, NDArray[np.int64]]:
        """The events back to back, their send times filled in, and where each starts (n + 1
        offsets): one copy, for the producer to hand out as message values."""
        return gather(self.parts, self.part, self.start, self.length, send_ms, newline=False)

    def values(
        self, send_ms: NDArray[np.int64], first: int = 0, stop: int | None = None
    ) -> list[bytes]:
        """Events [first, stop) as message values, their send times (epoch ms, one each) filled
        in."""
        part = slice(first, stop)
        return values(self.parts, self.part[part], self.start[part], self.length[part], send_ms)

    @property
    def lines(self) -> list[str]:
        return self.data.decode("ascii").split("\n")[:-1]


class RunStream:
    """The events of a plan's cells, merged in time order, a batch at a time."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.cells: dict[int, CellStream] = {}
        self.sent = 0  # events handed out so far

    def build(self) -> None:
        """Build every cell now (``batches`` builds those not built yet)."""
        share = self.plan.quotas
        for number in self.plan.cells:
            if number not in self.cells:
                quota = None if share is None else share[number]
                self.cells[number] = CellStream(self.plan.model, number, quota)

    def batches(self, size: int | Callable[[], int] = BATCH) -> Iterator[Batch]:
        """Batches of about ``size`` events (or as many as ``size()`` says, asked before each
        batch): every cell is taken up to the same simulated time, window after window, and each
        window's events are merged by (time, cell, position). The events do not depend on the
        sizes."""
        plan = self.plan
        model = plan.model
        self.build()
        active = [self.cells[number] for number in plan.cells]
        activity = model.cell_activity(cell_activity)
        per_hour = sum(activity[c] for c in plan.cells) * 1.1 / 24  # credit legs: about 10%
        until = math.floor(model.clock.origin * 1000.0)
        correction = 1.0  # what the last windows held, against what was expected of them
        while active:
            want = max(1, size() if callable(size) else size)
            until = _window(model, per_hour * correction, until, want)
            chunks = [stream.take(until) for stream in active]
            count = sum(len(chunk) for chunk in chunks)
            if count:
                yield self._merge(chunks, count)
            correction = min(8.0, max(0.125, correction * (0.6 + 0.4 * count / want)))
            active = [stream for stream in active if not stream.done]

    def _merge(self, chunks: list[Chunk], count: int) -> Batch:
        """One window's events of every cell (in cell order), in order of time: where each is,
        not a copy of it."""
        filled = [chunk for chunk in chunks if len(chunk)]
        sizes = [len(chunk) for chunk in filled]
        times = np.concatenate([chunk.times for chunk in filled])
        types = np.concatenate([chunk.types for chunk in filled])
        part = np.repeat(np.arange(len(filled), dtype=np.int64), sizes)
        start = np.concatenate([chunk.offsets[:-1] for chunk in filled])
        length = np.concatenate([np.diff(chunk.offsets) for chunk in filled])
        order = None
        if len(filled) > 1:
            order = np.argsort(times, kind="stable")  # ties: cell order, then position
            times, types = times[order], types[order]
            part, start, length = part[order], start[order], length[order]
        keys = tuple(chunk.keys for chunk in filled)
        parts = tuple(chunk.data for chunk in filled)
        batch = Batch(keys, order, times, types, self.sent, parts, part, start, length)
        self.sent += count
        return batch

    def summary(self) -> dict[str, Any]:
        """What the cells made so far: counts by type and status, fraud by typology, money in
        and out of the bank, and each cell's balance checksum (for a run manifest)."""
        counts: Counter[str] = Counter()
        fraud: Counter[str] = Counter()
        money_in = money_out = 0
        checksums: dict[str, str] = {}
        for number, stream in sorted(self.cells.items()):
            stats = stream.stats
            for t, name in enumerate(TX_TYPES):
                counts[f"{name}:approved"] += stats.counts[2 * t]
                counts[f"{name}:declined"] += stats.counts[2 * t + 1]
            for kind, n in zip(stream.ledger.typologies, stats.fraud, strict=True):
                fraud[kind] += n
            money_in += stats.money_in
            money_out += stats.money_out
            checksums[str(number)] = stream.checksum()
        return {
            "by_type": {
                name: {s: counts[f"{name}:{s}"] for s in ("approved", "declined")}
                for name in TX_TYPES
            },
            "fraud": {kind: fraud[kind] for kind in TYPOLOGIES if kind in fraud},
            "money_in": money_in,
            "money_out": money_out,
            "checksums": checksums,
        }
