"""The stream entry point and the event contract: one source of events for every command, a
contract the sink can import without the engine, and simulated time that is the population's."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import get_args

import numpy as np
import orjson
import pytest

from bankstream import events as contract
from bankstream.cli import main
from bankstream.invariants import check_stream
from loadgen import draw, model
from loadgen.calendar import HOUR
from loadgen.engine import CellStream
from loadgen.pacing import Schedule
from loadgen.stream import RunStream, plan
from scenarios import LoadedScenario, anomalies, bundled_names, load, reference
from scenarios.model import MixWeights, RailWeights
from tests.conftest import ROOT

# payday-rush has a million customers: a few of its cells are enough here
CELLS = {"payday-rush": "0-7"}


def stream_bytes(name: str, events: int, cells: str | None = None, size: int = 32_768) -> bytes:
    run = plan(load(name, environ={}), events=events, cells=cells)
    return b"".join(batch.data for batch in RunStream(run).batches(size))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[] if n in ("seed-demo", "payday-rush") else [pytest.mark.slow])
        for n in bundled_names()
    ],
)
def test_generate_gives_the_bytes_of_the_stream_entry_point(name: str, tmp_path: Path):
    """By-rate (retail-day, soak, ...) and accelerated (seed-demo, payday-rush) alike."""
    out = tmp_path / "events.jsonl"
    cells = CELLS.get(name)
    argv = ["generate", name, "--events", "3000", "-q", "-o", str(out)]
    assert main(argv + (["--cells", cells] if cells else [])) == 0
    assert out.read_bytes() == stream_bytes(name, 3000, cells)


@pytest.mark.slow
def test_batch_size_does_not_change_the_stream():
    whole = stream_bytes("fraud-ring", 20_000)
    assert stream_bytes("fraud-ring", 20_000, size=700) == whole
    assert stream_bytes("fraud-ring", 20_000, size=200_000) == whole


def test_events_are_ascii_and_decode_to_the_scenario_names():
    text = stream_bytes("seed-demo", 500)
    assert text.isascii()
    cities = {orjson.loads(line)["city"] for line in text.splitlines()}
    assert "São Paulo" in cities and "Belém" in cities


def test_the_contract_imports_without_numpy_pydantic_or_the_engine():
    code = (
        "import sys, bankstream.events, bankstream.invariants; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'pydantic', 'loadgen', 'scenarios', 'sink', 'yaml')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_engine_codes_and_scenario_types_come_from_the_contract():
    for code, name in enumerate(contract.TX_TYPES):
        assert model.TYPES[code] == name
    codes = (model.DEPOSIT, model.WITHDRAWAL, model.TRANSFER, model.BILL, model.CARD)
    assert [contract.TX_TYPES[c] for c in codes] == [
        "deposit",
        "withdrawal",
        "transfer",
        "bill_payment",
        "card_purchase",
    ]
    assert contract.TX_TYPES[model.REFUND] == "refund"
    assert contract.TX_TYPES[model.FEE] == "fee"
    assert contract.TX_TYPES[model.SALARY] == "salary"
    assert model.TYPES[: len(contract.MIX_TYPES)] == contract.MIX_TYPES
    assert model.RAIL_NAMES == contract.RAILS
    assert contract.RAILS[model.BOLETO] == "boleto"
    assert contract.RAILS[model.CARD_RAIL] == "card"
    assert draw.CP_KINDS[1:] == contract.COUNTERPARTY_KINDS
    assert draw.CP_KINDS[draw.CP_MERCHANT] == "merchant"
    assert draw.CP_KINDS[draw.CP_ACCOUNT] == "account"
    # the scenario model's types accept exactly the contract's names
    assert reference.CHANNELS == contract.CUSTOMER_CHANNELS == contract.CHANNELS[:-1]
    assert contract.CHANNELS[-1] == "none"  # never weighed: the customer did nothing
    assert get_args(get_args(MixWeights)[0].__args__[0]) == contract.MIX_TYPES
    assert get_args(get_args(RailWeights)[0].__args__[0]) == contract.TRANSFER_RAILS
    kinds = {
        get_args(cls.model_fields["kind"].annotation)[0]
        for cls in (
            anomalies.AccountTakeover,
            anomalies.CardTesting,
            anomalies.Structuring,
            anomalies.MuleRing,
        )
    }
    assert kinds == set(contract.TYPOLOGIES)


def sample_line() -> str:
    return stream_bytes("seed-demo", 1).decode().strip()


def test_markers_and_send_time_are_rewritten_without_re_encoding():
    line = sample_line()
    event = orjson.loads(line)
    assert line.endswith(contract.FRESH_END)
    sent = contract.with_send_times([line], [1_764_449_231_512])[0]
    assert orjson.loads(sent) == {**event, "send_time": 1_764_449_231_512}
    both = contract.remark(line, duplicate=True, delayed=True)
    assert orjson.loads(both) == {**event, "duplicate": True, "delayed": True}
    again = contract.remark(contract.remark(both, send_time=5), delayed=False)
    assert orjson.loads(again) == {**event, "duplicate": True, "send_time": 5}
    with pytest.raises(ValueError, match="already filled"):
        contract.with_send_times([sent], [1])
    with pytest.raises(ValueError, match="not an event"):
        contract.remark('{"a":1}')


def test_problem_accepts_every_event_and_names_what_is_wrong():
    events = [orjson.loads(line) for line in stream_bytes("fraud-ring", 2000).splitlines()]
    assert [contract.problem(e) for e in events] == [None] * len(events)
    good = events[0]
    cases = [
        ({**good, "event_version": 1}, "event_version 1"),
        ({k: v for k, v in good.items() if k != "amount"}, "missing amount"),
        ({**good, "amount": "12"}, "amount is not a 64-bit integer"),
        ({**good, "amount": 2**70}, "amount is not a 64-bit integer"),
        ({**good, "amount": -5}, "amount -5 is not positive"),
        ({**good, "amount": 1.5}, "amount is not a 64-bit integer"),
        ({**good, "fraud": 0}, "fraud is not true or false"),
        ({**good, "type": "teleport"}, "type 'teleport' is not one of"),
        ({**good, "channel": None}, "channel 'None' is not one of"),
        ({**good, "extra": 1, "seq": None}, None),
        ({**good, "status": "declined"}, "status and decline_reason disagree"),
        ({**good, "send_time": -1}, "send_time is neither"),
        ([1, 2], "not a JSON object"),
    ]
    for event, expected in cases:
        found = contract.problem(event)
        if expected is None:
            assert found is not None
        else:
            assert found is not None and found.startswith(expected), (expected, found)


@pytest.mark.slow
def test_events_per_customer_and_day_are_the_populations_own():
    """For every bundled scenario, the everyday events each segment initiates per customer and
    simulated day stay within its activity x the busiest hour and weekday x its spikes (the
    engine used to multiply everyone's activity to reach an accelerated load's rate: payday-rush
    had 772 events per account per simulated day)."""
    for name in bundled_names():
        loaded = load(name, environ={})
        scenario = loaded.scenario
        run = plan(loaded, events=20_000, cells=CELLS.get(name))
        counts: Counter[str] = Counter()
        first = last = None
        for batch in RunStream(run).batches():
            for line in batch.lines:
                e = orjson.loads(line)
                first = e["event_time"] if first is None else first
                last = e["event_time"]
                legs = e["counterparty_kind"] == "account" and e["direction"] == "credit"
                if not (e["fraud"] or e["type"] in ("salary", "refund") or legs):
                    counts[e["segment"]] += 1
        assert first is not None and last is not None
        days = max(last - first, 1) / 1000 / 86_400
        hours = np.asarray(scenario.time.hour_weights, dtype=float)
        weekdays = np.asarray(scenario.time.weekday_weights, dtype=float)
        peak = hours.max() / hours.mean() * weekdays.max() / weekdays.mean()
        spikes = float(np.prod([s.multiplier for s in scenario.time.spikes] or [1.0]))
        share_of_cells = run.share
        for segment in scenario.population.segments:
            customers = scenario.population.customers * segment.share * share_of_cells
            per_day = counts[segment.name] / customers / days
            bound = segment.activity.mean_per_day * peak * spikes * 1.5
            assert per_day <= bound, (name, segment.name, per_day, bound)


def test_accelerated_runs_are_checked_against_the_population():
    loaded = load("payday-rush", environ={})
    run = plan(loaded, cells="0")  # fits: 480,000 an hour against ~560,000
    assert run.events == Schedule.of_load(loaded.scenario.load).total
    slow = load("payday-rush", overrides=["time.acceleration=12"], environ={})
    with pytest.raises(Exception, match=r"raise time.acceleration to at least [\d,]+") as refused:
        plan(slow, cells="0")
    assert getattr(refused.value, "exit_code", None) == 2
    # what it suggests is enough
    suggested = re.search(r"at least ([\d,]+)", str(refused.value)).group(1).replace(",", "")
    enough = load("payday-rush", overrides=[f"time.acceleration={suggested}"], environ={})
    assert plan(enough, cells="0").events == run.events
    # by_rate has no clock to fit: simulated time follows the events
    by_rate = load(
        "payday-rush", overrides=["time.mode=by_rate", "time.acceleration=12"], environ={}
    )
    assert plan(by_rate, cells="0").events == run.events


def test_schedules_call_for_events_at_the_rate_asked():
    loaded = load("payday-rush", environ={})
    schedule = Schedule.of_load(loaded.scenario.load)
    # 2 min from 0 to 16,000/s, 5 min at 16,000/s, 2 min down to 4,000/s
    assert schedule.total == 960_000 + 4_800_000 + 1_200_000
    assert schedule.duration == 540
    times = schedule.send_times(0, schedule.total or 0)
    assert np.all(np.diff(times) >= 0)
    per_second = np.bincount(times.astype(int), minlength=540)
    assert abs(per_second[60] - 8_067) <= 1  # up the first ramp: 133.3 x (61² - 60²) / 2
    assert abs(per_second[300] - 16_000) <= 1
    assert abs(per_second[539] - 4_050) <= 2  # 16,000 -> 4,000 over 120 s: 4,050 in the last
    assert schedule.scaled(0.5).total == schedule.total // 2
    assert HOUR == 3600


def test_batches_carry_each_events_key_time_and_type():
    run = plan(load("fraud-ring", overrides=["delivery.duplicates=0.05"], environ={}), events=5000)
    for batch in RunStream(run).batches(1000):
        events = [orjson.loads(line) for line in batch.lines]
        assert batch.keys == [e["account"] for e in events]
        assert [contract.TX_TYPES[t] for t in batch.types] == [e["type"] for e in events]
        assert np.all(np.diff(batch.times) >= 0)
        data, offsets = batch.render(None)
        assert [data[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)] == [
            line.encode() for line in batch.lines
        ]


@pytest.mark.parametrize("delivery", [["delivery.out_of_order=0.2"], ["delivery.duplicates=0.5"]])
@pytest.mark.slow
def test_delays_and_copies_keep_the_order_whatever_the_batches_and_the_split(
    delivery: list[str],
):
    """Held events go out at the end of their cell's stream no earlier than its last event, so
    neither the batch size nor the split of cells changes the run."""
    loaded = load("fraud-ring", overrides=["delivery.out_of_order=0.2", *delivery], environ={})

    def run(cells: str | None, size: int) -> list[tuple[int, str]]:
        stream = RunStream(plan(loaded, events=20_000, cells=cells))
        out: list[tuple[int, str]] = []
        for batch in stream.batches(size):
            out += zip(batch.times.tolist(), batch.lines, strict=True)
        return out

    whole = run(None, 32_768)
    assert [t for t, _ in whole] == sorted(t for t, _ in whole)
    assert run(None, 500) == whole
    halves = run("0-127", 4_000) + run("128-255", 9_000)
    assert sorted(halves, key=lambda e: e[0]) == sorted(whole, key=lambda e: e[0])
    assert {line for _, line in halves} == {line for _, line in whole}


def test_a_span_ends_on_a_whole_millisecond():
    """With 21 slots an hour (171.43 s each) a row can fall in the last fraction of a
    millisecond of a span: it belongs to the next one, or `take` never reaches it."""
    overrides = ["population.customers=100"] + [
        f"population.segments.{i}.activity.mean_per_day=10000" for i in range(3)
    ]
    loaded = load("retail-day", overrides=overrides, environ={})
    model = plan(loaded, events=10).model
    assert 3_600_000 % model.slots_per_hour != 0
    stream = CellStream(model, 0)
    for _ in range(300):
        stream._draw()
        prepared = stream.prepared
        assert prepared is not None
        assert len(prepared) == 0 or int(prepared.time_ms.max()) < stream.drawn_to
        pending = (stream.pending.time * 1000.0).astype(np.int64)
        assert len(pending) == 0 or int(pending.min()) >= stream.drawn_to
        stream.cursor, stream.empty_spans = len(prepared), 0  # as if the ledger took them


def test_a_renamed_key_is_a_problem_not_a_crash():
    event = orjson.loads(stream_bytes("seed-demo", 1).splitlines()[0])
    event["tx"] = event.pop("tx_id")
    assert contract.problem(event) == "missing tx_id"


@pytest.mark.slow
def test_check_stream_accepts_a_whole_run_with_delays():
    """Cells interleave in a run: delayed events are put back where they were made cell by
    cell."""
    loaded = load("fraud-ring", overrides=["delivery.out_of_order=0.2"], environ={})
    events = [orjson.loads(line) for line in stream_bytes_of(loaded, 20_000).splitlines()]
    assert any(e["delayed"] for e in events)
    assert check_stream(events) == []


def stream_bytes_of(loaded: LoadedScenario, events: int) -> bytes:
    run = plan(loaded, events=events)
    return b"".join(batch.data for batch in RunStream(run).batches())
