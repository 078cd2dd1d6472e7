"""The long tests (`pytest -m long`, minutes each, left out of every other run): the memory of
a long generate and of a long produce stays flat."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def resident_memory(args: list[str], seconds: float) -> list[tuple[float, int]]:
    """(seconds, resident bytes of the whole process tree) every 5 s while ``bankstream ARGS``
    runs for ``seconds``; the process must still be running at the end."""
    import time

    import psutil

    process = subprocess.Popen(
        [sys.executable, "-m", "bankstream", *args], cwd=ROOT, stderr=subprocess.PIPE
    )
    samples: list[tuple[float, int]] = []
    began = time.monotonic()
    try:
        watched = psutil.Process(process.pid)
        while time.monotonic() - began < seconds:
            time.sleep(5)
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            tree = [watched, *watched.children(recursive=True)]
            samples.append((time.monotonic() - began, sum(p.memory_info().rss for p in tree)))
    finally:
        process.kill()
        for child in psutil.Process().children(recursive=True):
            child.kill()
        process.wait()
        if process.stderr:
            process.stderr.close()
    return samples


def flat(samples: list[tuple[float, int]], bound: int) -> None:
    """After a minute's warm-up the memory grows by less than 64 MiB, and stays under
    ``bound``."""
    settled = [rss for t, rss in samples if t >= 60]
    shown = [(round(t), rss >> 20) for t, rss in samples]
    assert max(settled) - settled[0] < 64 * 2**20, shown
    assert max(rss for _, rss in samples) < bound, shown


@pytest.mark.long
def test_a_long_generate_keeps_its_memory_flat():
    """Five minutes of retail-day to /dev/null (`pytest -m long`): under 1 GiB."""
    args = ["generate", "retail-day", "--events", "100000000000", "-o", os.devnull, "-q"]
    flat(resident_memory(args, 300), 2**30)


@pytest.mark.long
@pytest.mark.integration
def test_a_long_produce_keeps_its_memory_flat(stack, tmp_path: Path):
    """Five minutes of retail-day into Kafka at 20,000 events/s with two processes
    (`pytest -m long`): the whole tree under 1 GiB. A process settles once each of its cells
    has drawn a whole span (a cell's first span is only a share of one, so that the cells do
    not all draw at once): about 600,000 events of its own, a minute at 10,000/s. At 3,000/s
    in all, the minute this test allows for it was not enough: a process grew for ~7 minutes
    (e.g. 242 -> 341 MB over its first 600,000 events at 6,000/s, then 341 -> 359 MB over
    the next 2.3 million, flat in the last two minutes)."""
    topic = f"test.memory.{os.getpid()}"
    args = ["produce", "retail-day", "--rate", "20000", "--duration", "10m", "--processes", "2",
            "--topic", topic, "--quiet", "--metrics-port", "0",
            "--results", str(tmp_path)]  # fmt: skip
    try:
        flat(resident_memory(args, 300), 2**30)
    finally:
        from bankstream import kafka

        kafka.delete_topic(kafka.admin_client(stack), topic)
