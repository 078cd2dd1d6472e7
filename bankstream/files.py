"""Files written whole or not at all."""

from __future__ import annotations

from pathlib import Path


def write_whole(path: Path, data: str | bytes) -> Path:
    """``data`` (text as UTF-8) at ``path``, written beside it and then renamed over it: a reader
    never sees half a file, and a crash leaves the previous one."""
    partial = path.with_name(path.name + ".part")
    if isinstance(data, str):
        partial.write_text(data, encoding="utf-8")
    else:
        partial.write_bytes(data)
    partial.replace(path)
    return path
