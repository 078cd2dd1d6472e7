"""`bankstream sink` refuses bad flags in one line, before it connects to anything."""

from __future__ import annotations

import pytest

from tests.conftest import invoke


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--batch-size", "0"], "--batch-size must be between 1 and 100,000, got 0"),
        (["--processes", "0"], "--processes must be between 1 and 256, got 0"),
        (["--flush-interval", "soon"], "--flush-interval: expected a duration such as 30s"),
        (["--until-idle", "0s"], "--until-idle must be longer than 0, got 0s"),
        (["--metrics-port", "70000"], "--metrics-port must be between 0 and 65535, got 70000"),
        (["--batch-sise", "5"], "--batch-sise (did you mean --batch-size?)"),
        (["--set", "sink.batch_size=5"], "--set needs --scenario"),
        (["--scenario", "retail-dya"], "did you mean 'retail-day'?"),
        (["--scenario", "retail-day", "--set", "sink.batch_size=0"], "sink.batch_size"),
    ],
)
def test_bad_flags(args: list[str], expected: str):
    done = invoke("sink", *args, env={"BANKSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
