"""The producer's batches made in a thread of their own (loadgen.producer.worker.Ahead): in
order, none lost at a stop, errors raised in the sending thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from loadgen.producer.worker import NOT_READY, Ahead


def _made(n: int, made: list[int], gate: threading.Event | None = None) -> Iterator[Any]:
    for i in range(n):
        if gate is not None:
            gate.wait()
        made.append(i)
        yield i


def test_batches_come_in_order_then_the_end() -> None:
    made: list[int] = []
    ahead = Ahead(_made(7, made))
    taken = []
    while (item := ahead.get(wait=True)) is not None:
        taken.append(item)
    assert taken == list(range(7))
    assert ahead.rest() == []


def test_a_batch_being_made_is_not_ready_without_waiting() -> None:
    gate = threading.Event()
    made: list[int] = []
    ahead = Ahead(_made(3, made, gate))
    assert ahead.get(wait=False) is NOT_READY
    gate.set()
    assert ahead.get(wait=True) == 0
    rest: list[Any] = ahead.rest()
    assert rest == made[1:]  # those made before the halt, in order


def test_a_stop_hands_back_every_batch_made_and_no_more() -> None:
    made: list[int] = []
    ahead = Ahead(_made(100, made), depth=2)
    assert ahead.get(wait=True) == 0
    time.sleep(0.3)  # the queue fills (2) and one more waits to be put
    rest: list[Any] = ahead.rest()
    assert [0, *rest] == made  # what was made is what is handed back, in order
    assert len(made) < 100  # the making stopped


def test_an_error_while_making_is_raised_where_batches_are_taken() -> None:
    def failing() -> Iterator[Any]:
        yield 1
        msg = "cell 3 made no event"
        raise RuntimeError(msg)

    ahead = Ahead(failing())
    assert ahead.get(wait=True) == 1
    with pytest.raises(RuntimeError, match="cell 3"):
        ahead.get(wait=True)
