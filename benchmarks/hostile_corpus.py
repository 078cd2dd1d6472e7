"""Search for the scenario texts the loader handles worst, and keep them as regression cases.

Hypothesis generates YAML-ish text (scenario keys, anchors and aliases, deep nesting, long
scalars, odd numbers and dates, control characters) and arbitrary bytes, and is told to look
for the slowest (``hypothesis.target``) and the largest in memory. The worst distinct cases
are written to ``tests/unit/hostile_corpus.jsonl.gz`` (text, milliseconds, MiB), where
``tests/unit/test_hostile.py`` loads every one, and validates them all through the CLI under its
memory limit: each must end in a model or clear located lines. Run again after a loader
change to refresh the corpus:

    python -m benchmarks.hostile_corpus --examples 3000 --keep 24
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings, target
from hypothesis import strategies as st

from scenarios.errors import ScenarioError
from scenarios.loader import load

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "unit" / "hostile_corpus.jsonl.gz"
BASE = "name: hostile\npopulation: {customers: 100}\nload: {rate: 10, events: 100}\n"

KEYS = st.sampled_from(
    [
        "name", "seed", "population", "customers", "segments", "time", "start", "load",
        "rate", "events", "delivery", "kafka_config", "anomalies", "typologies", "extends",
        "transaction_types", "limits", "<<", "? ", "- ", "&a ", "*a", "!!python/object", "%YAML",
    ]
)  # fmt: skip
ATOMS = st.one_of(
    KEYS,
    st.sampled_from(
        [
            "2025-02-30T00:00:00", "1e400", "-0", ".nan", "0x" + "f" * 40, "9" * 31, "~",
            "\x1b[31m", "\t", "\u202e", "[", "]", "{", "}", ": ", ", ", "\n", "  ", "'", '"',
            "|", ">", "&x", "*x", "&x [*x, *x, *x]", "!!binary", "---\n", "...\n", "#",
        ]
    ),
    st.text(max_size=30),
)  # fmt: skip


@st.composite
def yamlish(draw: st.DrawFn) -> str:
    """A scenario-shaped text: the base, then pieces glued together, sometimes repeated."""
    parts = draw(st.lists(ATOMS, max_size=60))
    repeat = draw(st.integers(1, 400))
    middle = "".join(parts)
    if draw(st.booleans()):
        middle *= repeat
    return draw(st.sampled_from(["", BASE])) + middle


def cost(text: str) -> tuple[float, int]:
    """Seconds and peak bytes (Python allocations, a second load under tracemalloc, which would
    slow the timed one many times over) to load ``text`` as a scenario file."""
    with tempfile.TemporaryDirectory() as folder:
        return _cost(Path(folder) / "probe.yaml", text)


def _cost(path: Path, text: str) -> tuple[float, int]:
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        began = time.perf_counter()
        _load(path)
        seconds = time.perf_counter() - began
        tracemalloc.start()
        _load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak


def _load(path: Path) -> None:
    with contextlib.suppress(ScenarioError):
        load(str(path), environ={})


def search(examples: int) -> list[tuple[float, int, str]]:
    found: list[tuple[float, int, str]] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.target],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.one_of(
            yamlish(), st.binary(max_size=4000).map(lambda b: b.decode("utf-8", "surrogateescape"))
        )
    )
    def probe(text: str) -> None:
        seconds, peak = cost(text)
        target(seconds, label="seconds")
        target(peak / 2**20, label="MiB")
        found.append((seconds, peak, text))

    probe()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--keep", type=int, default=24, help="worst cases kept (half by time)")
    args = parser.parse_args()
    found = search(args.examples)
    slowest = sorted(found, key=lambda f: -f[0])
    largest = sorted(found, key=lambda f: -f[1])
    kept: dict[str, tuple[float, int, str]] = {}
    for seconds, peak, text in [*slowest[: args.keep // 2], *largest[: args.keep // 2]]:
        kept.setdefault(text, (seconds, peak, text))
    with gzip.open(CORPUS, "wt", encoding="utf-8", errors="surrogateescape") as out:
        for seconds, peak, text in kept.values():
            case = {"ms": round(seconds * 1000, 1), "MiB": round(peak / 2**20, 2), "text": text}
            out.write(json.dumps(case) + "\n")
            print(f"{len(text):,} characters: {case['ms']} ms, {case['MiB']} MiB")
    print(f"{len(found):,} cases tried, {len(kept)} kept in {CORPUS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
