"""The library's hooks into its dependencies, through their public API where they have one.

A BatchHistogram, observed a batch at a time from several processes, is served exactly as a
prometheus-client Histogram observed value by value: same name, buckets, series and values, a
process that ended included. The parser's suggestions come from argparse's data (leftover
words, a rejected choice), the same whichever way the command line is parsed."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.utils import floatToGoString

from bankstream.cli import build_parser, parse
from bankstream.commands import COMMANDS, Parser, unknown_choice
from bankstream.metrics import BatchHistogram, _FilesCollector, _le
from loadgen.producer.metrics import LATENCY_BUCKETS as LOADGEN_BUCKETS
from sink.metrics import LATENCY_BUCKETS as SINK_BUCKETS

NAME = "bankstream_test_latency_seconds"
HELP = "a latency"
BUCKETS = (*LOADGEN_BUCKETS, 1e6, 2.5e7)  # and bounds Go writes with an exponent

# a worker: its batches of values (multiples of 1/1024: every sum exact, whatever the order)
WORKER = """
import os, sys
import numpy as np
batches = [np.asarray(b, dtype=np.float64) for b in eval(sys.argv[2])]
if sys.argv[1] == "batch":
    from bankstream.metrics import BatchHistogram
    histogram = BatchHistogram({name!r}, {help!r}, {buckets!r})
    for values in batches:
        histogram.observe_many(values)
else:
    from prometheus_client import Histogram
    histogram = Histogram({name!r}, {help!r}, buckets={buckets!r})
    for values in batches:
        for value in values.tolist():
            histogram.observe(value)
if sys.argv[3] == "die":
    os._exit(9)  # ends without a goodbye: its files stay, as a killed worker's
"""

ON_BOUNDS = [b for b in BUCKETS if (b * 1024).is_integer()]  # values on a bound, exact
MANY = [k / 1024 for k in range(0, 2**19, 331)]  # a batch of more than a few: counted sorted
BATCHES = [
    [[0.5 / 1024, 1 / 1024, 3 / 1024, 0.5, 0.5, 1.0, 7.0, 400.0], [], [2.0**21, 2.0**25]],
    [[0.0, 10.0, 10.0, 30.0, 30.0 + 1 / 1024], [1 / 256] * 7, MANY],
    [[120.0, 300.0, 301.0, 1 / 1024], MANY[::-1], [*ON_BOUNDS, *ON_BOUNDS] * 40],
]


def _run_workers(kind: str, directory: Path, batches: list[list[list[float]]]) -> None:
    code = textwrap.dedent(WORKER).format(name=NAME, help=HELP, buckets=BUCKETS)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    for i, worker in enumerate(batches):
        fate = "die" if i == 1 else "end"
        done = subprocess.run(
            [sys.executable, "-c", code, kind, repr(worker), fate],
            env=env,
            cwd=Path(__file__).parents[2],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == (9 if fate == "die" else 0), done.stderr


def _served(collector: object) -> tuple[bytes, bytes]:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry), openmetrics_latest(registry)


@pytest.mark.parametrize("batches", [BATCHES, [[]]], ids=["observed", "no-observation-yet"])
def test_served_as_the_histogram_observed_one_by_one(tmp_path: Path, batches):
    reference, batched = tmp_path / "histogram", tmp_path / "batch"
    reference.mkdir()
    batched.mkdir()
    _run_workers("one-by-one", reference, batches)
    _run_workers("batch", batched, batches)
    expected = _served(MultiProcessCollector(None, path=str(reference)))
    got = _served(_FilesCollector(str(batched)))
    assert got == expected
    text = got[0].decode()
    assert f"# TYPE {NAME} histogram" in text and ":bucket_counts" not in text
    count = sum(len(b) for worker in batches for b in worker)
    assert f"{NAME}_count {float(count)}" in text


def test_other_metrics_pass_through(tmp_path: Path):
    code = (
        "from prometheus_client import Counter, Gauge\n"
        "Counter('bankstream_test_things', 'things').inc(3)\n"
        "Gauge('bankstream_test_now', 'now', multiprocess_mode='livesum').set(2)\n"
    )
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert _served(_FilesCollector(str(tmp_path))) == _served(
        MultiProcessCollector(None, path=str(tmp_path))
    )


def test_few_or_many_values_count_alike():
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [rng.lognormal(-4, 2, 3000), np.repeat(BUCKETS, 3), [np.nan, -1.0, np.inf, 0.0]]
    )
    rng.shuffle(values)
    few, many = (BatchHistogram(f"bankstream_test_{k}_seconds", "t", BUCKETS) for k in "ab")
    for part in np.array_split(values, 200):  # each at most a few values
        few.observe_many(part)
    many.observe_many(values)
    for bound in (*BUCKETS, np.inf):
        le = {"le": floatToGoString(bound)}
        a = REGISTRY.get_sample_value("bankstream_test_a_seconds:bucket_counts", le)
        b = REGISTRY.get_sample_value("bankstream_test_b_seconds:bucket_counts", le)
        assert a == b, bound
    assert np.isnan(REGISTRY.get_sample_value("bankstream_test_b_seconds:sum") or 0.0)


def test_bounds_are_written_as_prometheus_client_writes_them():
    for bound in (*BUCKETS, *SINK_BUCKETS, 1, 1e-9, 123456.0, 1234567.0, 1e21, float("inf")):
        assert _le(bound) == floatToGoString(bound), bound


# ---------------------------------------------------------------- the command line's errors


def _error(call) -> str:
    err = io.StringIO()
    with pytest.raises(SystemExit) as done, contextlib.redirect_stderr(err):
        call()
    assert done.value.code == 2
    return err.getvalue().strip()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["stack", "up", "--durabel"],
            "bankstream: error: unrecognized arguments: --durabel (did you mean --durable?) "
            "(see bankstream --help)",
        ),
        (
            ["--config", "x", "generate", "retail-day", "--config", "y"],
            "bankstream: error: unrecognized arguments: --config (an option of bankstream "
            "itself: put it before the command) y (see bankstream --help)",
        ),
        (
            ["stack", "stauts"],
            "bankstream stack: error: unknown choice 'stauts'; did you mean 'status'? (choose "
            "from install, up, down, status, check) (see bankstream stack --help)",
        ),
    ],
)
def test_parse_args_errs_as_the_command_line_does(argv: list[str], expected: str):
    assert _error(lambda: build_parser(argv).parse_args(argv)) == expected
    assert _error(lambda: parse(argv)) == expected


def test_choices_said_from_the_values_not_the_message():
    # a quote in the value: argparse's text once went through unchanged
    assert _error(lambda: parse(["stack", "up", "--with", "con'nect"])) == (
        "bankstream stack up: error: unknown choice \"con'nect\"; did you mean 'connect'? "
        "(choose from connect, pushgateway) (see bankstream stack up --help)"
    )
    # a choice of a number keeps argparse's own message
    assert _error(lambda: parse(["stack", "up", "--brokers", "2"])) == (
        "bankstream stack up: error: argument --brokers: invalid choice: 2 (choose from 1, 3) "
        "(see bankstream stack up --help)"
    )


def test_a_parser_knows_its_commands():
    parser = build_parser()
    commands = {sub.prog.split()[-1]: sub for sub in parser.commands()}
    assert sorted(commands) == sorted(COMMANDS)
    stack = commands["stack"]
    assert isinstance(stack, Parser)
    assert [sub.prog.split()[-1] for sub in stack.commands()] == [
        "install",
        "up",
        "down",
        "status",
        "check",
    ]
    assert unknown_choice("sink", ["sinks", "stack"]) == (
        "unknown choice 'sink'; did you mean 'sinks'? (choose from sinks, stack)"
    )
