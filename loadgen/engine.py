"""The engine: a cell's events, chunk by chunk, in simulated-time order; and whole runs of cells.

A cell's stream depends only on the scenario, its seed and the cell number. ``--events N`` is
split between cells in proportion to their customers, so any split of the cells between
processes or hosts yields the same events.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from bankstream.errors import BankstreamError
from loadgen.calendar import Clock
from loadgen.draw import CP_ACCOUNT, CellDraws, Rows
from loadgen.fraud import FraudPlanner
from loadgen.ledger import Ledger, Stats
from loadgen.model import EngineModel
from loadgen.population import DRAW, FRAUD, cell_activity, cell_rng
from loadgen.population import build_cell as _build_cell
from scenarios import LoadedScenario

CHUNK_EVENTS = 2048  # aim for this many events per vectorised chunk
MAX_SPAN = 24 * 62  # hours
INJECT = 3  # random stream of the injected duplicates and delays


@dataclass
class Chunk:
    keys: list[str]
    lines: list[str]
    times: list[int]  # event time, epoch milliseconds

    def __len__(self) -> int:
        return len(self.lines)


class CellStream:
    """The events of one cell, in order, generated in chunks."""

    def __init__(
        self, model: EngineModel, cell: int, clock: Clock | None = None, scale: float = 1.0
    ) -> None:
        if not 0 <= cell < model.cells:
            msg = f"cell {cell} does not exist (this scenario has cells 0-{model.cells - 1})"
            raise BankstreamError(msg)
        self.model = model
        self.cell = cell
        self.clock = clock or Clock(model.scenario)
        self.state = _build_cell(model, cell)
        self.draws = CellDraws(model, self.state, self.clock)
        self.fraud = FraudPlanner(model, self.draws, self.clock, scale)
        self.ledger = Ledger(model, self.state)
        seed = model.scenario.seed
        self.rng = cell_rng(seed, cell, DRAW)
        self.fraud_rng = cell_rng(seed, cell, FRAUD)
        self.inject_rng = cell_rng(seed, cell, INJECT)
        self.scale = scale
        per_slot = max(self.draws.expected_per_hour() * scale / self.clock.slots_per_hour, 1e-9)
        max_span = MAX_SPAN * self.clock.slots_per_hour
        self.span = int(min(max_span, max(1, math.ceil(CHUNK_EVENTS / per_slot))))
        self.next_slot = 0
        self.pending = Rows.empty()
        self.held: list[tuple[int, str, str, int]] = []  # delayed events: (due index, ...)
        delivery = model.scenario.delivery
        self.duplicates = delivery.duplicates
        self.out_of_order = delivery.out_of_order

    @property
    def stats(self) -> Stats:
        return self.ledger.stats

    def chunks(self, quota: int | None = None) -> Iterator[Chunk]:
        """Chunks of events until ``quota`` events (all of them, without a quota)."""
        left = quota if quota is not None else math.inf
        empty = 0
        while left > 0:
            k0 = self.next_slot
            k1 = k0 + self.span
            self.next_slot = k1
            rows = self.draws.hours(self.rng, k0, k1, self.scale)
            salaries = self.draws.salaries(self.rng, k0, k1)
            # normal events: those emitted so far (credit legs included), and when the ones
            # drawn now happen, for the fraud budget
            stats = self.ledger.stats
            normal_before = self.ledger.counter - sum(stats.fraud)
            # (a transfer to another customer of the bank is two events: it counts twice)
            legs = rows.time[(rows.cp_kind == CP_ACCOUNT) & (rows.direction < 0)]
            normal_times = np.sort(np.concatenate([rows.time, legs, salaries.time]))
            planned = self.fraud.plan(self.fraud_rng, k0, k1, normal_before, normal_times)
            every = Rows.concat([self.pending, rows, salaries, planned])
            end = self.clock.origin + k1 * self.clock.slot
            due = every.time < end
            self.pending = every.take(~due)
            now = every.take(due)
            now = now.take(np.argsort(now.time, kind="stable"))
            hours, _, dates = self.clock.hours(k0, k1)
            index = np.clip(
                ((now.time - self.clock.origin) // self.clock.slot).astype(np.int64) - k0,
                0,
                k1 - k0 - 1,
            )
            days = np.fromiter((d.toordinal() for d in dates), dtype=np.int64, count=len(dates))
            limit = int(min(left, 2**62))
            keys, lines, times = self.ledger.apply(now, hours[index], days[index], limit)
            if not lines:
                empty += 1
                if empty > 1000:
                    msg = (
                        f"{self.model.scenario.name}: cell {self.cell} produced no event in "
                        f"{empty * self.span / self.clock.slots_per_hour:g} simulated hours; "
                        "check the activity and mix"
                    )
                    raise BankstreamError(msg)
                continue
            empty = 0
            left -= len(lines)
            chunk = Chunk(keys, lines, times)
            if self.duplicates or self.out_of_order:
                chunk = self._inject(chunk)
            yield chunk
        if self.held:  # delayed events still held back go out at the end
            held = sorted(self.held)
            self.held = []
            yield Chunk([h[1] for h in held], [h[2] for h in held], [h[3] for h in held])

    def _inject(self, chunk: Chunk) -> Chunk:
        """Marked duplicates (sent again) and delayed events (sent after later ones)."""
        n = len(chunk)
        rng = self.inject_rng
        dup = rng.random(n) < self.duplicates
        late = rng.random(n) < self.out_of_order
        delay = rng.integers(1, 20, n)
        keys: list[str] = []
        lines: list[str] = []
        times: list[int] = []
        held = self.held
        for i in range(n):
            while held and held[0][0] <= i:
                _, k, line, t = heapq.heappop(held)
                keys.append(k)
                lines.append(line)
                times.append(t)
            key, line, t = chunk.keys[i], chunk.lines[i], chunk.times[i]
            copy = line.replace('"duplicate":false', '"duplicate":true', 1) if dup[i] else None
            if late[i]:
                marked = line.replace('"delayed":false', '"delayed":true', 1)
                heapq.heappush(held, (i + int(delay[i]), key, marked, t))
                if copy is not None:  # the second copy follows the first, even when late
                    heapq.heappush(
                        held,
                        (
                            i + int(delay[i]),
                            key,
                            copy.replace('"delayed":false', '"delayed":true', 1),
                            t,
                        ),
                    )
                continue
            keys.append(key)
            lines.append(line)
            times.append(t)
            if copy is not None:
                keys.append(key)
                lines.append(copy)
                times.append(t)
        # what is still held goes out at the start of the next chunk
        self.held = [(0, k, line, t) for _, k, line, t in held]
        heapq.heapify(self.held)
        return Chunk(keys, lines, times)


def parse_cells(text: str | None, cells: int) -> range:
    """``"a-b"`` (inclusive) or ``"a"`` -> the cells; all of them for None."""
    if text is None:
        return range(cells)
    try:
        low_text, _, high_text = text.partition("-")
        low = int(low_text)
        high = int(high_text) if high_text else low
    except ValueError:
        msg = f"--cells expects a-b (e.g. 0-127) or one cell, got {text!r}"
        raise BankstreamError(msg) from None
    if low > high:
        msg = f"--cells {text}: the first cell is after the last (did you mean {high}-{low}?)"
        raise BankstreamError(msg)
    if low < 0 or high >= cells:
        msg = f"--cells {text}: this scenario has cells 0-{cells - 1}"
        raise BankstreamError(msg)
    return range(low, high + 1)


def quotas(model: EngineModel, events: int) -> list[int]:
    """``events`` split between all cells in proportion to their customers' expected activity
    (largest remainder), so that every cell's stream covers about the same simulated time."""
    activity = model.cell_activity(cell_activity)
    total = sum(activity)
    exact = [events * a / total for a in activity]
    out = [int(x) for x in exact]
    order = sorted(range(model.cells), key=lambda c: (-(exact[c] - out[c]), c))
    for c in order[: events - sum(out)]:
        out[c] += 1
    return out


def time_scale(loaded: LoadedScenario) -> float:
    """Activity multiplier so that an accelerated clock sees the load's rate (1 = natural pace)."""
    scenario = loaded.scenario
    if scenario.time.mode != "accelerated":
        return 1.0
    load = scenario.load
    if isinstance(load.rate, float):
        rate = load.rate
    elif load.stages:
        total = sum(s.duration for s in load.stages)
        volume, previous = 0.0, 0.0
        for stage in load.stages:  # a linear ramp runs at the mean of its two ends
            mean = (previous + stage.rate) / 2 if stage.ramp == "linear" else stage.rate
            volume += mean * stage.duration
            previous = stage.rate
        rate = volume / total
    else:
        return 1.0
    natural = 0.0
    pop = scenario.population
    for seg in pop.segments:
        natural += pop.customers * seg.share * seg.activity.mean_per_day / 86400.0
    return rate / (scenario.time.acceleration * natural) if natural > 0 else 1.0


def slots_per_hour(model: EngineModel, scale: float) -> int:
    """Hours are cut into slots when a cell would draw far more than a chunk in one hour."""
    pop = model.scenario.population
    per_day = sum(s.share * s.activity.mean_per_day for s in pop.segments)
    per_hour_of_a_cell = pop.customers / model.cells * per_day / 24.0 * scale
    return int(min(3600, max(1, math.ceil(per_hour_of_a_cell / CHUNK_EVENTS))))


def cell_streams(
    model: EngineModel, cells: Iterable[int], events: int, scale: float = 1.0
) -> Iterator[tuple[CellStream, Iterator[Chunk]]]:
    share = quotas(model, events)
    clock = Clock(model.scenario, slots_per_hour(model, scale))
    for cell in cells:
        stream = CellStream(model, cell, clock, scale)
        yield stream, stream.chunks(share[cell])


def merged(streams: list[Iterator[Chunk]]) -> Iterator[tuple[int, str, str]]:
    """Events of several cells, merged by event time: (time ms, key, line)."""

    def flatten(chunks: Iterator[Chunk]) -> Iterator[tuple[int, str, str]]:
        for chunk in chunks:
            yield from zip(chunk.times, chunk.keys, chunk.lines, strict=True)

    return heapq.merge(*(flatten(s) for s in streams), key=lambda e: e[0])


def lines_for_cells(ref: str, events: int, cells: str | None = None) -> list[str]:
    """Every event line of ``cells`` when a run of ``events`` is split over all the cells:
    what one process or host of a larger run sends (used by tests and workers)."""
    from scenarios import load

    loaded = load(ref, environ={})
    model = EngineModel.build(loaded.scenario, loaded.digest)
    out: list[str] = []
    for _, chunks in cell_streams(
        model, parse_cells(cells, model.cells), events, time_scale(loaded)
    ):
        for chunk in chunks:
            out.extend(chunk.lines)
    return out
