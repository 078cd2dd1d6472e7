"""Type stub of the sink's fast path (sink/_fast.c)."""

class Contract:
    def __init__(
        self,
        names: tuple[bytes, ...],
        kinds: bytes,
        enums: tuple[tuple[tuple[bytes, ...], bool] | None, ...],
        version: int,
        positions: tuple[int, ...],
        approved: bytes,
        max_bytes: int,
    ) -> None: ...
    def convert(self, value: bytes, key: object) -> tuple[bytes, int | None] | None: ...
