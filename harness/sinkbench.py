"""`bankstream bench sinks`: the same topic through each pipeline in turns (A B C A B C), from a
standing start: how fast each one stores a backlog of the scenario's events.

The topic is produced once (N events, as fast as Kafka takes them). Then, round by round, each
target reads the whole topic from the start into a database of its own: bankstream's sink with
every projection, the same sink with ``--no-projections`` (transactions only), and the official
MongoDB Kafka sink connector on Kafka Connect. A target's rate is its documents over the time
from its start (process, or connector created) to its last document; the writing rate, from its
first document to its last, is given too. Each target's figure is the median of its rounds; the
ratios are to the first target's, side by side in one run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bankstream.errors import BankstreamError
from bankstream.settings import Settings

TARGETS = ("bankstream", "bankstream-no-projections", "connect")
STALL = 60.0  # seconds without a new document: the target is stuck, its turn ends


def measure(
    settings: Settings,
    scenario: str,
    overrides: Sequence[str],
    events: int,
    targets: Sequence[str],
    rounds: int,
    processes: int,
    say: Callable[[str], None],
    global_flags: Sequence[str] = (),
) -> dict[str, Any]:
    """Produce once, store it through each target ``rounds`` times in turns; the figures.
    ``global_flags``: the words before the command (``--config``), for the children."""
    from bankstream import kafka, mongo
    from loadgen.producer.coordinator import ensure_topic
    from scenarios import load

    loaded = load(scenario, overrides=list(overrides))
    tag = uuid.uuid4().hex[:8]
    topic = f"bankstream.bench-sinks-{tag}"
    say(ensure_topic(settings, topic, loaded.scenario.delivery.partitions, 1, None))
    admin = kafka.admin_client(settings)
    turns: list[dict[str, Any]] = []
    try:
        expected = _produce(scenario, overrides, events, topic, say, global_flags)
        with mongo.client(settings) as client:
            for round_ in range(1, rounds + 1):
                for target in targets:
                    database = f"bench_sinks_{tag}_{round_}_{target.replace('-', '_')}"
                    say(f"round {round_}: {target} ...")
                    try:
                        turn = _turn(
                            settings,
                            client,
                            loaded,
                            target,
                            topic,
                            database,
                            expected,
                            processes,
                            scenario,
                            overrides,
                            global_flags,
                        )
                    finally:
                        client.drop_database(database)
                    turn.update(target=target, round=round_)
                    turns.append(turn)
                    for problem in turn["problems"]:
                        say(f"round {round_}: {target}: {problem}")
                    say(
                        f"round {round_}: {target}: {turn['stored']:,} of {expected:,} in "
                        f"{turn['seconds']:.1f} s: {turn['rate']:,.0f}/s from its start, "
                        f"{turn['writing_rate'] or 0:,.0f}/s writing"
                    )
    finally:
        with contextlib.suppress(Exception):
            kafka.delete_topic(admin, topic)
    return summarise(turns, targets, expected, events, processes, scenario)


def summarise(
    turns: list[dict[str, Any]],
    targets: Sequence[str],
    expected: int,
    events: int,
    processes: int,
    scenario: str,
) -> dict[str, Any]:
    """Each target's median rates of its rounds, and their ratios to the first target's."""
    by_target: dict[str, dict[str, Any]] = {}
    for target in targets:
        mine = [t for t in turns if t["target"] == target]
        rates = [t["rate"] for t in mine if t["complete"]]
        writing = [t["writing_rate"] for t in mine if t["complete"] and t["writing_rate"]]
        by_target[target] = {
            "rate": statistics.median(rates) if rates else None,
            "writing_rate": statistics.median(writing) if writing else None,
            "rates": [t["rate"] for t in mine],
            "complete": all(t["complete"] for t in mine),
        }
    base = by_target[targets[0]]["rate"]
    for figures in by_target.values():
        figures["ratio"] = figures["rate"] / base if figures["rate"] and base else None
    return {
        "scenario": scenario,
        "events": events,
        "expected": expected,
        "processes": processes,
        "targets": by_target,
        "turns": turns,
    }


def _produce(
    scenario: str,
    overrides: Sequence[str],
    events: int,
    topic: str,
    say: Callable[[str], None],
    global_flags: Sequence[str],
) -> int:
    """The scenario's first ``events`` events into ``topic``; the distinct events acknowledged."""
    from harness.verify import expected_events

    say(f"producing {events:,} events of {scenario} into {topic} ...")
    with tempfile.TemporaryDirectory(prefix="bankstream-bench-") as scratch:
        argv = [sys.executable, "-m", "bankstream", *global_flags, "produce", scenario]
        for override in overrides:
            argv += ["--set", override]
        argv += ["--events", str(events), "--rate", "max", "--topic", topic]
        argv += ["--results", scratch, "--quiet", "--metrics-linger", "0"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        found = sorted(Path(scratch).glob("*/manifest*.json"))
        if done.returncode != 0 or not found:
            lines = done.stderr.strip().splitlines()
            msg = f"producing the topic failed: {lines[-1] if lines else done.returncode}"
            raise BankstreamError(msg)
        return expected_events(json.loads(found[0].read_text()))


def _turn(
    settings: Settings,
    client: Any,
    loaded: Any,
    target: str,
    topic: str,
    database: str,
    expected: int,
    processes: int,
    scenario: str,
    overrides: Sequence[str],
    global_flags: Sequence[str],
) -> dict[str, Any]:
    """One target storing the whole topic into ``database`` from a standing start."""
    collection = client[database][loaded.scenario.sink.collections.transactions]
    group = f"bench-sinks-{uuid.uuid4().hex[:8]}"
    stop: Callable[[], None]
    began = time.monotonic()
    if target == "connect":
        from bankstream import connect
        from harness.pipeline import connector_config
        from harness.watch import Target

        config = connector_config(
            settings,
            topic,
            Target(database, collection.name),
            {**loaded.scenario.sink.connect, "tasks.max": processes},
        )
        connect.create(settings, group, config)

        def stop() -> None:
            connect.delete(settings, group)

    else:
        from sink.request import SinkRequest

        request = SinkRequest(
            scenario=scenario,
            overrides=tuple(overrides),
            topic=topic,
            group=group,
            processes=processes,
            output="quiet",
            metrics_port=0,
            projections=target != "bankstream-no-projections",
        )
        argv = [sys.executable, "-m", "bankstream", *global_flags, *request.to_argv()]
        env = {**os.environ, "BANKSTREAM_MONGO_DATABASE": database}
        log = tempfile.TemporaryFile()  # noqa: SIM115 (its stderr, read if it fails)
        process = subprocess.Popen(  # noqa: S603 (our own command)
            argv, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if process.returncode not in (0, 130, 143, -15):
                log.seek(0)
                lines = log.read().decode(errors="replace").strip().splitlines()
                said = lines[-1] if lines else "no message"
                problems.append(f"sink exited with {process.returncode}: {said}")
            log.close()

    stored, first, last = 0, None, began
    problems: list[str] = []
    try:
        while stored < expected:
            time.sleep(0.1)
            count = int(collection.estimated_document_count())
            now = time.monotonic()
            if count != stored:
                stored, last = count, now
                first = first if first is not None else now
            elif now - last > STALL:
                break
    finally:
        stop()
    seconds = last - began
    writing = last - first if first is not None else 0.0
    return {
        "stored": stored,
        "complete": stored >= expected,
        "seconds": round(seconds, 3),
        "rate": stored / seconds if seconds > 0 else 0.0,
        "writing_rate": stored / writing if writing > 0 else None,
        "start_seconds": round(first - began, 3) if first is not None else None,
        "problems": problems,
    }
