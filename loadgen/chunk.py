"""A run of a cell's events: keys, JSON texts back to back in one buffer, and times."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass
class Chunk:
    """Events of one cell: their keys, their JSON texts back to back in one buffer (the C
    ledger writes them there once), and when each goes out in the cell's stream (epoch ms: its
    event time, but for a delayed event the time of the event it goes out before; never
    decreasing in a cell)."""

    keys: list[str]
    data: bytes
    offsets: NDArray[np.int64]  # n + 1: event i is data[offsets[i]:offsets[i + 1]]
    times: NDArray[np.int64]
    types: NDArray[np.uint8]  # the events' type codes (positions in the contract's TX_TYPES)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def lines(self) -> list[str]:
        text = self.data.decode("ascii")
        at = self.offsets.tolist()
        return [text[at[i] : at[i + 1]] for i in range(len(self.keys))]

    @classmethod
    def of_lines(
        cls, keys: list[str], lines: list[str], times: list[int], types: list[int]
    ) -> Chunk:
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum([len(line) for line in lines], out=offsets[1:])
        return cls(
            keys,
            "".join(lines).encode("ascii"),
            offsets,
            np.asarray(times, dtype=np.int64),
            np.asarray(types, dtype=np.uint8),
        )

    @classmethod
    def join(cls, parts: list[Chunk]) -> Chunk:
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return EMPTY
        shift = np.cumsum([0] + [len(p.data) for p in parts[:-1]])
        return cls(
            [k for p in parts for k in p.keys],
            b"".join(p.data for p in parts),
            np.concatenate(
                [p.offsets[:-1] + d for p, d in zip(parts, shift, strict=True)]
                + [np.array([sum(len(p.data) for p in parts)], dtype=np.int64)]
            ),
            np.concatenate([p.times for p in parts]),
            np.concatenate([p.types for p in parts]),
        )


EMPTY = Chunk(
    [], b"", np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8)
)
