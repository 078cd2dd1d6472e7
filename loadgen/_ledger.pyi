"""Type stub of the ledger's C loop (loadgen/_ledger.c)."""

from collections.abc import Sequence
from typing import Any

class Ledger:
    counter: int
    pool_size: int
    def __init__(
        self,
        who: Sequence[str],
        keys: Sequence[str],
        heads: Sequence[str],
        categories: Sequence[str],
        typologies: Sequence[str],
        prefix: str,
        instance_prefix: str,
        tail: str,
        n_channels: int,
        partial_share: float,
        max_age_ms: float,
        night_max: int | None,
        daily_max: int | None,
        device_daily_max: int | None,
        device_per_pix: int,
        state: tuple[Any, ...],
        /,
    ) -> None: ...
    def run(
        self, columns: tuple[Any, ...], i0: int, i1: int, limit: int, /
    ) -> tuple[
        bytes,
        bytes,
        bytes,
        list[str],
        int,
        int,
        int,
        int,
        int,
        int,
        tuple[int, ...],
        tuple[int, ...],
        tuple[int, ...],
        bytes,
    ]: ...
    def sweep(self, oldest: float, /) -> int: ...

def gather(
    parts: tuple[bytes, ...],
    part: Any,
    start: Any,
    length: Any,
    send_ms: Any | None,
    newline: bool,
    /,
) -> tuple[bytes, bytes]: ...
def values(
    parts: tuple[bytes, ...], part: Any, start: Any, length: Any, send_ms: Any, /
) -> list[bytes]: ...
