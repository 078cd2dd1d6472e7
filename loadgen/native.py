"""The ledger with its event loop in C (``loadgen/_ledger.c``, built by ``pip install``).

Same decisions, balances and bytes as :class:`loadgen.ledger.Ledger`, whose ``run`` stays the
reference: tests make the same events with both and compare them byte for byte. Without the
compiled module (a checkout nobody installed), the reference runs instead.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loadgen.chunk import Chunk
from loadgen.errors import LoadgenError
from loadgen.ledger import N_CHANNELS, Ledger, Prepared, opening_statements
from loadgen.model import EngineModel
from loadgen.population import CellState

try:
    from loadgen import _ledger
except ImportError:  # pragma: no cover - only without a compiler at install time
    _ledger = None  # type: ignore[assignment]
    logging.getLogger(__name__).info(
        "the ledger's C loop is not built (pip install -e .): using the Python reference"
    )

AVAILABLE = _ledger is not None


class NativeLedger(Ledger):
    """A ledger whose accounts' balances and sequence numbers are int64 arrays updated in place
    by the C loop (the cell's state points at the same arrays)."""

    def _books(self, state: CellState) -> None:
        """The C loop keeps the running totals and statements in the arrays made below."""

    def __init__(self, model: EngineModel, state: CellState) -> None:
        super().__init__(model, state)
        size = state.size
        balance = np.array(state.balance, dtype=np.int64)
        seq = np.array(state.seq, dtype=np.int64)
        floor = np.frombuffer(state.floor, dtype=np.int64).copy()
        # from now on the state's balances and sequence numbers are these arrays
        state.balance = balance  # type: ignore[assignment]
        state.seq = seq  # type: ignore[assignment]
        self.arrays = (
            balance,
            floor,
            seq,
            np.full(size, -1, dtype=np.int64),  # night of the running night total
            np.zeros(size, dtype=np.int64),
            np.full(size, -1, dtype=np.int64),  # day of the running daily total
            np.zeros(size, dtype=np.int64),
            np.full(size, -1, dtype=np.int64),  # day of the running new-device Pix total
            np.zeros(size, dtype=np.int64),
            opening_statements(state),  # what a credit card owed at its last statement
        )
        night, daily = self.night_max, self.daily_max
        self.native = _ledger.Ledger(
            state.who,
            state.key,
            self.heads,
            self.category_frag,
            self.typologies,
            self.prefix,
            self.instance_prefix,
            self.tail,
            N_CHANNELS,
            float(model.refund_partial_share),
            float(self.max_age) * 1000.0,
            None if night is None else int(night),
            None if daily is None else int(daily),
            None if self.device_daily_max is None else int(self.device_daily_max),
            int(self.device_per_pix),
            self.arrays,
        )
        # the C loop keeps its own copy of the accounts' texts: the list is not needed again
        state.who = []

    def _run(self, columns: tuple[Any, ...], i0: int, i1: int, limit: int) -> Any:
        try:
            return self.native.run(columns, i0, i1, limit)
        except OverflowError as exc:
            msg = f"{self.model.scenario_name}: {exc}"
            raise LoadgenError(msg) from None

    @property
    def pool_size(self) -> int:
        return int(self.native.pool_size)

    def sweep(self, oldest: float) -> int:
        return int(self.native.sweep(oldest))

    def run(self, prepared: Prepared, i0: int, i1: int, limit: int) -> tuple[Chunk, int]:
        rows = prepared.rows
        columns = (
            rows.acc,
            rows.typ,
            rows.direction,
            rows.amount,
            rows.cp_kind,
            rows.cp_id,
            rows.u,
            rows.fraud,
            rows.instance,
            rows.drain,
            rows.new_device,
            rows.blocked,
            prepared.time_ms,
            prepared.nkey,
            prepared.dkey,
            prepared.limited,
            prepared.special,
            prepared.internal,
            prepared.refundable,
            prepared.head,
            prepared.category,
            prepared.cap,
            prepared.ndkey,
        )
        (
            data,
            offsets,
            times,
            keys,
            done,
            legs,
            skipped,
            money_in,
            money_out,
            count,
            declined,
            looked_at,
            fraud,
            types,
        ) = self._run(columns, i0, i1, limit)
        self.counter = int(self.native.counter)
        self.count(list(looked_at), list(declined), legs, skipped, money_in, money_out)
        for i, n in enumerate(fraud):
            self.stats.fraud[i] += n
        chunk = Chunk(
            keys,
            data,
            np.frombuffer(offsets, dtype=np.int64),
            np.frombuffer(times, dtype=np.int64),
            np.frombuffer(types, dtype=np.uint8),
        )
        return chunk, done


def gather(
    parts: tuple[bytes, ...],
    part: NDArray[np.int64],
    start: NDArray[np.int64],
    length: NDArray[np.int64],
    send_ms: NDArray[np.int64] | None = None,
    newline: bool = True,
) -> tuple[bytes, NDArray[np.int64]]:
    """Events [start, start + length) of parts[part], in this order, back to back (each followed
    by a newline: JSON lines), their send times filled in when given, and where each starts
    (n + 1 offsets): one copy when the C module is built."""
    part, start, length = (np.ascontiguousarray(x, dtype=np.int64) for x in (part, start, length))
    if send_ms is not None:
        send_ms = np.ascontiguousarray(send_ms, dtype=np.int64)
    if AVAILABLE:
        data, at = _ledger.gather(parts, part, start, length, send_ms, newline)
        return data, np.frombuffer(at, dtype=np.int64)
    end = b"\n" if newline else b""
    events = [
        parts[p][a : a + n]
        for p, a, n in zip(part.tolist(), start.tolist(), length.tolist(), strict=True)
    ]
    if send_ms is not None:
        if any(not e.endswith(b"null}") for e in events):
            msg = "gather: an event's send time is already set"
            raise ValueError(msg)
        events = [e[:-5] + b"%d}" % ms for e, ms in zip(events, send_ms.tolist(), strict=True)]
    offsets = np.zeros(len(events) + 1, dtype=np.int64)
    np.cumsum([len(e) + len(end) for e in events], out=offsets[1:])
    return b"".join(e + end for e in events), offsets


def values(
    parts: tuple[bytes, ...],
    part: NDArray[np.int64],
    start: NDArray[np.int64],
    length: NDArray[np.int64],
    send_ms: NDArray[np.int64],
) -> list[bytes]:
    """Each event [start, start + length) of parts[part] as its own bytes (a message value),
    its send time filled in: one copy when the C module is built."""
    part, start, length, send_ms = (
        np.ascontiguousarray(x, dtype=np.int64) for x in (part, start, length, send_ms)
    )
    if AVAILABLE:
        return _ledger.values(parts, part, start, length, send_ms)
    data, offsets = gather(parts, part, start, length, send_ms, newline=False)
    at = offsets.tolist()
    return [data[at[i] : at[i + 1]] for i in range(len(at) - 1)]


def ledger(model: EngineModel, state: CellState) -> Ledger:
    """The model's ledger for a cell: the C loop unless the model asks for the reference."""
    if model.native and AVAILABLE:
        return NativeLedger(model, state)
    return Ledger(model, state)
