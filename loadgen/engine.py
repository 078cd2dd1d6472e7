"""The engine: a cell's events, chunk by chunk, in simulated-time order.

A cell's stream depends only on the scenario, its seed and the cell number. ``--events N`` is
split between cells in proportion to their customers' expected activity, so any split of the cells
between processes or hosts yields the same events. Whole runs of cells, merged in time order, are
``loadgen.stream``'s.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator

import numpy as np

from bankstream.events import balance_checksum, remark
from loadgen.chunk import Chunk
from loadgen.draw import CLOSE, CP_ACCOUNT, CellDraws, Rows
from loadgen.errors import LoadgenError, LoadgenUsageError
from loadgen.fraud import FraudPlanner
from loadgen.ledger import Prepared, Stats
from loadgen.model import CHUNK_EVENTS, EngineModel
from loadgen.native import ledger
from loadgen.population import DRAW, FRAUD, cell_activity, cell_rng
from loadgen.population import build_cell as _build_cell
from loadgen.simtime import span

INJECT = 3  # random stream of the injected duplicates and delays


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # cells' first spans: spread evenly whatever their count


class CellStream:
    """The events of one cell, in order. They depend only on the model (the scenario and its
    seed), the cell and the quota: nothing about the run, and not how they are asked for.

    Rows are drawn a span of simulated slots at a time (vectorised, about CHUNK_EVENTS events);
    the ledger turns them into events as far as they are asked for (``take(until)``), so a run
    that merges many cells in time order holds rows, not event texts, for what lies ahead."""

    def __init__(self, model: EngineModel, cell: int, quota: int | None = None) -> None:
        if not 0 <= cell < model.cells:
            msg = f"cell {cell} does not exist (this scenario has cells 0-{model.cells - 1})"
            raise LoadgenUsageError(msg)
        self.model = model
        self.cell = cell
        self.clock = clock = model.clock
        self.state = _build_cell(model, cell)
        self.draws = CellDraws(model, self.state, clock)
        self.fraud = FraudPlanner(model, self.draws, clock)
        self.ledger = ledger(model, self.state)
        seed = model.seed
        self.rng = cell_rng(seed, cell, DRAW)
        self.fraud_rng = cell_rng(seed, cell, FRAUD)
        self.inject_rng = cell_rng(seed, cell, INJECT)
        self.per_hour = self.draws.expected_per_hour()
        self.left: float = quota if quota is not None else math.inf
        self.next_slot = 0
        self.pending = Rows.empty()  # rows drawn for later slots
        self.prepared: Prepared | None = None  # the rows of the span drawn last
        self.cursor = 0  # rows of ``prepared`` the ledger has taken
        self.drawn_to = math.floor(clock.origin * 1000.0)  # every row before this is drawn
        self.last_time = self.drawn_to
        self.empty_spans = 0
        self.empty_spans_since = 0
        self.duplicates = model.duplicates
        self.out_of_order = model.out_of_order
        self.injector = (
            Injector(self.inject_rng, self.duplicates, self.out_of_order)
            if self.duplicates or self.out_of_order
            else None
        )

    @property
    def stats(self) -> Stats:
        return self.ledger.stats

    @property
    def done(self) -> bool:
        """The quota is met (and nothing is held back any more)."""
        return self.left <= 0 and not (self.injector and self.injector.held)

    def checksum(self) -> str:
        """The cell's balance checksum: every account with events, its balance and last seq."""
        state = self.state
        return balance_checksum(
            (key, balance, seq)
            for key, balance, seq in zip(state.key, state.balance, state.seq, strict=True)
            if seq
        )

    def take(self, until: float) -> Chunk:
        """The events before ``until`` (epoch ms) not taken yet, up to the quota."""
        parts: list[Chunk] = []
        while self.left > 0:
            prepared = self.prepared
            if prepared is None or self.cursor >= len(prepared):
                if self.drawn_to >= until:
                    break
                self._draw()
                continue
            cursor = self.cursor
            stop = int(np.searchsorted(prepared.time_ms, until, side="left"))
            if stop <= cursor:
                break
            limit = int(min(self.left, 2**62))
            made, done = self.ledger.run(prepared, cursor, stop, limit)
            self.cursor = cursor + done
            self.left -= len(made)
            parts.append(made)
            if len(made):
                self.empty_spans, self.empty_spans_since = 0, self.next_slot
        chunk = Chunk.join(parts)
        if self.injector is not None:
            chunk = self.injector.apply(chunk, last=self.left <= 0, at=self.last_time)
        if len(chunk):
            self.last_time = int(chunk.times[-1])
        return chunk

    def chunks(self) -> Iterator[Chunk]:
        """Every event to the quota (for ever without one), a span of slots at a time."""
        while not self.done:
            if self.prepared is None or self.cursor >= len(self.prepared):
                self._draw()
            chunk = self.take(self.drawn_to)
            if len(chunk):
                yield chunk

    def _draw(self) -> None:
        """Rows of the next span of slots, sorted by time, prepared for the ledger."""
        clock = self.clock
        k0 = self.next_slot
        # a cell's first span is a share of the others, its own (a quarter to all of it, by
        # the cell's number): cells of about the same activity would otherwise all draw in the
        # same window, span after span (a producer's batch then took ~0.4 s to make, and a
        # first batch needed every cell's whole span)
        share = 1.0 if k0 else 0.25 + 0.75 * ((self.cell * _GOLDEN) % 1.0)
        k1 = k0 + span(self.model, k0, self.per_hour, CHUNK_EVENTS * share)
        self.next_slot = k1
        rows = self.draws.hours(self.rng, k0, k1)
        salaries = self.draws.salaries(self.rng, k0, k1)
        cards = self.draws.card_cycle(k0, k1)
        # normal events: those emitted so far (credit legs included), and when the ones drawn
        # now happen, for the fraud budget
        stats = self.ledger.stats
        normal_before = self.ledger.counter - sum(stats.fraud)
        # (a transfer to another account of the bank is two events: it counts twice; a card's
        # statement closing is none)
        legs = rows.time[(rows.cp_kind == CP_ACCOUNT) & (rows.direction < 0)]
        card_times = np.repeat(cards.time, np.where(cards.typ == CLOSE, 0, 2))
        normal_times = np.sort(np.concatenate([rows.time, legs, salaries.time, card_times]))
        planned = self.fraud.plan(self.fraud_rng, k0, k1, normal_before, normal_times)
        self.draws.opening_hours(self.fraud_rng, planned)  # fraudsters find places shut too
        every = Rows.concat([self.pending, rows, salaries, cards, planned])
        end = clock.origin + k1 * clock.slot
        drawn_to = math.floor(end * 1000.0)
        # due: before the end, in whole milliseconds (as `take` asks for them)
        due = (every.time * 1000.0).astype(np.int64) < drawn_to
        self.pending = every.take(~due)
        index = np.flatnonzero(due)
        now = every.take(index[np.argsort(every.time[index], kind="stable")])
        hours, _, dates = clock.hours(k0, k1)
        index = np.clip(
            ((now.time - clock.origin) // clock.slot).astype(np.int64) - k0, 0, k1 - k0 - 1
        )
        days = np.fromiter((d.toordinal() for d in dates), dtype=np.int64, count=len(dates))
        self.prepared = self.ledger.prepare(now, hours[index], days[index])
        self.cursor = 0
        self.drawn_to = drawn_to
        # spans drawn since the ledger last made an event (rows may make none: refunds with
        # nothing to refund): a cell that makes nothing for ever is an error, not a hang
        self.empty_spans += 1
        if self.empty_spans > 100:
            msg = (
                f"{self.model.scenario_name}: cell {self.cell} made no event in "
                f"{(k1 - self.empty_spans_since) / clock.slots_per_hour:g} simulated hours; "
                "check the segments' activity and mix (refunds need earlier purchases)"
            )
            raise LoadgenError(msg)


class Injector:
    """Marked duplicates (sent again) and delayed events (sent after later ones). Which events,
    and how late, depends only on each event's place in its cell's stream (the draws come in
    blocks of a fixed size), not on how the stream is asked for."""

    BLOCK = 4096

    def __init__(self, rng: np.random.Generator, duplicates: float, out_of_order: float) -> None:
        self.rng = rng
        self.duplicates = duplicates
        self.out_of_order = out_of_order
        self.position = 0  # events of the cell seen so far
        self.draws: tuple[list[bool], list[bool], list[int]] = ([], [], [])
        self.base = 0  # position of the first of ``draws``
        # (due position, order, key, line, type code)
        self.held: list[tuple[int, int, str, str, int]] = []
        self.order = 0

    def _draw(self, position: int) -> tuple[bool, bool, int]:
        offset = position - self.base
        if offset >= len(self.draws[0]):
            self.base += len(self.draws[0])
            offset = position - self.base
            rng, n = self.rng, self.BLOCK
            self.draws = (
                (rng.random(n) < self.duplicates).tolist(),
                (rng.random(n) < self.out_of_order).tolist(),
                rng.integers(1, 20, n).tolist(),
            )
        return self.draws[0][offset], self.draws[1][offset], self.draws[2][offset]

    def apply(self, chunk: Chunk, last: bool, at: int) -> Chunk:
        """``chunk`` with copies and delays; ``last``: the cell's stream ends here, so what is
        still held goes out at its end (at ``at``, its last time, when the chunk is empty)."""
        keys: list[str] = []
        lines: list[str] = []
        times: list[int] = []
        types: list[int] = []
        held = self.held
        for key, line, t, kind in zip(
            chunk.keys, chunk.lines, chunk.times.tolist(), chunk.types.tolist(), strict=True
        ):
            position = self.position
            self.position += 1
            while held and held[0][0] <= position:  # due: out before this event, at its time
                _, _, k, late_line, late_kind = heapq.heappop(held)
                keys.append(k)
                lines.append(late_line)
                times.append(t)
                types.append(late_kind)
            duplicate, late, delay = self._draw(position)
            copy = remark(line, duplicate=True) if duplicate else None
            if late:
                self.order += 1
                marked = remark(line, delayed=True)
                heapq.heappush(held, (position + delay, self.order, key, marked, kind))
                if copy is not None:  # the second copy follows the first, even when late
                    self.order += 1
                    marked = remark(copy, delayed=True)
                    heapq.heappush(held, (position + delay, self.order, key, marked, kind))
                continue
            keys.append(key)
            lines.append(line)
            times.append(t)
            types.append(kind)
            if copy is not None:
                keys.append(key)
                lines.append(copy)
                times.append(t)
                types.append(kind)
        if last:
            # the end of the stream: after the chunk's last event (whether it went out or is
            # held too), or after the last one sent before it
            end = int(chunk.times[-1]) if len(chunk) else at
            while held:
                _, _, k, late_line, late_kind = heapq.heappop(held)
                keys.append(k)
                lines.append(late_line)
                times.append(end)
                types.append(late_kind)
        return Chunk.of_lines(keys, lines, times, types)


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
