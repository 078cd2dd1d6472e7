"""The transaction engine: reproducible, exact and realistic, checked on a million events."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections import Counter
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from bankstream.events import MIX_TYPES, balance_checksum, card_upkeep
from bankstream.invariants import check_stream, external_flow
from loadgen.assign import parse_cells
from loadgen.calendar import HOUR, Clock
from loadgen.engine import CellStream, quotas
from loadgen.ledger import purchase, unpack
from loadgen.model import EngineModel
from loadgen.population import build_cell
from loadgen.stream import RunStream, plan
from scenarios import load

# chi-square critical values at p = 0.001 (so a correct generator fails 1 time in 1000)
CHI2_999 = {5: 20.515, 6: 22.458, 23: 49.728}


def model_of(name: str, **overrides: str) -> EngineModel:
    loaded = load(name, overrides=[f"{k}={v}" for k, v in overrides.items()], environ={})
    return EngineModel.build(loaded.scenario, loaded.digest)


def lines_for_cells(ref: str, events: int, cells: str | None = None) -> list[str]:
    """Every event line of ``cells`` when a run of ``events`` is split over all the cells:
    what one process or host of a larger run makes."""
    run = plan(load(ref, environ={}), events=events, cells=cells)
    return [line for batch in RunStream(run).batches() for line in batch.lines]


def cell_lines(model: EngineModel, cell: int, quota: int) -> list[str]:
    return [line for chunk in CellStream(model, cell, quota).chunks() for line in chunk.lines]


def test_same_cells_and_seed_give_identical_events():
    first = lines_for_cells("retail-day", 20_000, "0-15")
    again = lines_for_cells("retail-day", 20_000, "0-15")
    assert len(first) == sum(quotas(model_of("retail-day"), 20_000)[:16])
    assert first == again
    other_seed = load("retail-day", overrides=["seed=7"], environ={})
    assert other_seed.digest != load("retail-day", environ={}).digest


@pytest.mark.slow
def test_one_process_or_four_give_the_same_events():
    alone = lines_for_cells("fraud-ring", 40_000)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        parts = pool.starmap(
            lines_for_cells,
            [("fraud-ring", 40_000, cells) for cells in ("0-63", "64-127", "128-191", "192-255")],
        )
    together = [line for part in parts for line in part]
    assert len(alone) == 40_000
    assert Counter(together) == Counter(alone)


def test_quotas_split_events_exactly():
    """In proportion to each cell's expected activity, whole events, summing exactly."""
    model = model_of("retail-day")
    activity = [build_cell(model, c).activity.sum() for c in range(model.cells)]
    total = sum(activity)
    for events in (1, 255, 256, 1000, 206_000):
        share = quotas(model, events)
        assert sum(share) == events
        assert all(abs(q - events * a / total) < 1 for q, a in zip(share, activity, strict=True))


def test_cells_flag():
    assert parse_cells("3-9", 256) == range(3, 10)
    assert parse_cells("5", 256) == range(5, 6)
    for bad, message in (("9-3", "did you mean 3-9"), ("0-256", "cells 0-255"), ("a-b", "a-b")):
        with pytest.raises(Exception, match=message):
            parse_cells(bad, 256)


class Run:
    """Every cell of a scenario for whole simulated days: events parsed, per cell in order."""

    def __init__(self, name: str, days: int) -> None:
        self.model = model_of(name)
        clock = self.model.clock
        self.end_ms = int((clock.start + days * 24 * HOUR) * 1000)
        self.streams: list[CellStream] = []
        self.events: list[list[dict[str, Any]]] = []
        for cell in range(self.model.cells):
            stream = CellStream(self.model, cell)
            chunk = stream.take(self.end_ms)
            self.streams.append(stream)
            self.events.append([orjson.loads(line) for line in chunk.lines])

    def all(self) -> list[dict[str, Any]]:
        return [e for cell in self.events for e in cell]

    def whole_days(self) -> list[dict[str, Any]]:
        return self.all()


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(("retail-day", 5), marks=pytest.mark.slow, id="retail-day"),
        pytest.param(("fraud-ring", 25), marks=pytest.mark.slow, id="fraud-ring"),
    ],
)
def run(request: pytest.FixtureRequest) -> Run:
    name, days = request.param
    return Run(name, days)


def test_a_million_events(run: Run):
    assert len(run.all()) >= 1_000_000


def test_ledger_invariants(run: Run):
    for cell, events in enumerate(run.events):
        assert check_stream(events) == [], f"cell {cell}"
    ids = [e["tx_id"] for e in run.all()]
    assert len(set(ids)) == len(ids)


def test_money_is_conserved_and_floors_hold(run: Run):
    for stream, events in zip(run.streams, run.events, strict=True):
        state = stream.state
        # what the accounts hold now = what they opened with + what crossed the bank's border
        assert sum(state.balance) == int(state.opening.sum()) + external_flow(events)
        assert all(b >= f for b, f in zip(state.balance, state.floor, strict=True))
    for e in run.all():
        if e["status"] == "declined":
            assert e["balance_before"] == e["balance_after"]


def test_type_mix_matches_the_scenario(run: Run):
    """Initiated transactions by type (no refunds, salaries, fraud, credit legs or the card
    accounts' upkeep: statements paid, prepaid cards topped up)."""
    model = run.model
    activity = np.zeros(len(model.segments))
    for stream in run.streams:
        activity += np.bincount(
            stream.state.segment, stream.state.activity, minlength=len(model.segments)
        )
    expected = sum(a * seg.mix for a, seg in zip(activity, model.segments, strict=True))
    kinds = [t for t in MIX_TYPES if t != "refund"]
    p = np.array([expected[MIX_TYPES.index(t)] for t in kinds])
    p /= p.sum()
    counted = Counter(
        e["type"]
        for e in run.all()
        if not e["fraud"]
        and e["type"] in kinds
        and not card_upkeep(e)
        and not (
            e["type"] == "transfer"
            and e["counterparty_kind"] == "account"
            and e["direction"] == "credit"
        )
    )
    observed = np.array([counted[t] for t in kinds], dtype=float)
    n = observed.sum()
    chi2 = float(((observed - n * p) ** 2 / (n * p)).sum())
    assert chi2 < CHI2_999[len(kinds) - 1], dict(zip(kinds, observed / n, strict=True))


def test_hour_of_day_profile(run: Run):
    clock = Clock(run.model.scenario)
    weights = np.asarray(run.model.scenario.time.hour_weights)
    p = weights / weights.sum()
    hours = Counter(
        clock.local_time(e["event_time"] / 1000).hour
        for e in run.whole_days()
        if not e["fraud"]
        and e["type"] not in ("salary", "refund", "deposit", "withdrawal")  # cash: ATM hours
        and e["rail"] != "ted"  # TED waits for its settlement window
        and not card_upkeep(e)  # a card's statement paid, a top-up: on the card's own days
        and not (e["counterparty_kind"] == "account" and e["direction"] == "credit")
    )
    observed = np.array([hours[h] for h in range(24)], dtype=float)
    n = observed.sum()
    chi2 = float(((observed - n * p) ** 2 / (n * p)).sum())
    assert chi2 < CHI2_999[23], (observed / n).round(4).tolist()


def test_fraud_rate_and_labels(run: Run):
    """The realised fraud share lies in a binomial interval around the configured rate,
    widened by the design effect of fraud coming in instances (bursts, rings)."""
    anomalies = run.model.scenario.anomalies
    events = run.all()
    n = len(events)
    fraud = [e for e in events if e["fraud"]]
    rate = anomalies.total_rate
    # events per instance: the clusters of the design effect
    per_instance = Counter(e["fraud_instance"] for e in fraud)
    sizes = np.array(list(per_instance.values()) or [1], dtype=float)
    deff = float((sizes**2).mean() / sizes.mean())
    sd = (n * rate * (1 - rate) * deff) ** 0.5
    assert abs(len(fraud) - n * rate) <= 3.29 * sd, (len(fraud), n * rate, sd)
    assert {e["typology"] for e in fraud} <= {t.kind for t in anomalies.typologies}
    if rate >= 0.001:  # enough of each typology to see them all
        assert {e["typology"] for e in fraud} == {t.kind for t in anomalies.typologies}
    assert all(e["typology"] and e["fraud_instance"] for e in fraud)
    assert not any(e["typology"] or e["fraud_instance"] for e in events if not e["fraud"])


def test_declines_and_limits_happen(run: Run):
    reasons = Counter(e["decline_reason"] for e in run.all())
    assert reasons["insufficient_funds"] > 0
    assert reasons["limit_exceeded"] > 0
    declined = sum(v for k, v in reasons.items() if k)
    assert declined / len(run.all()) < 0.2  # a bank, not a wall


def test_stats_and_checksum_describe_what_was_emitted():
    """What a run manifest needs: counts by type and status, money in and out, a checksum."""
    model = model_of("retail-day")

    def run_cell(cell: int) -> tuple[CellStream, list[dict[str, Any]]]:
        stream = CellStream(model, cell, 3000)
        events = [orjson.loads(x) for c in stream.chunks() for x in c.lines]
        return stream, events

    stream, events = run_cell(3)
    counted = Counter((e["type"], e["status"]) for e in events)
    by_type = stream.stats.by_type()
    for (kind, status), n in counted.items():
        assert by_type[kind][status] == n
    assert sum(v for d in by_type.values() for v in d.values()) == len(events)
    assert stream.stats.money_in - stream.stats.money_out == external_flow(events)
    last = {e["account"]: (e["balance_after"], e["seq"]) for e in events}
    assert stream.checksum() == balance_checksum((a, b, s) for a, (b, s) in last.items())
    again, _ = run_cell(3)
    assert again.checksum() == stream.checksum()
    assert run_cell(4)[0].checksum() != stream.checksum()


@pytest.mark.slow
def test_short_runs_realise_the_configured_fraud_rate():
    """Instances last up to days (structuring) and may start the next night, so a run of a few
    simulated days must not lose the fraud still in flight at either end: three runs of 150,000
    events (about 3.5 simulated days per cell) realise each typology's rate within a binomial
    interval widened by the design effect."""
    found: Counter[str] = Counter()
    sizes: dict[str, Counter[str]] = {}
    total = 0
    for seed in (11, 12, 13):
        model = model_of("fraud-ring", seed=str(seed))
        share = quotas(model, 150_000)
        for cell in range(model.cells):
            for chunk in CellStream(model, cell, share[cell]).chunks():
                total += len(chunk)
                for line in chunk.lines:
                    if '"fraud":true' in line:
                        event = orjson.loads(line)
                        found[event["typology"]] += 1
                        sizes.setdefault(event["typology"], Counter())[
                            f"{seed}-{event['fraud_instance']}"
                        ] += 1
    assert total == 450_000
    for typology in model_of("fraud-ring").scenario.anomalies.typologies:
        per = np.array(list(sizes[typology.kind].values()), dtype=float)
        deff = float((per**2).mean() / per.mean())
        expected = total * typology.rate
        sd = (expected * (1 - typology.rate) * deff) ** 0.5
        assert abs(found[typology.kind] - expected) <= 3.29 * sd, (typology.kind, found, sd)


@pytest.mark.parametrize("seed", ["1", "2"])
def test_first_instances_are_spread_evenly_over_the_cells(seed: str):
    """Where each cell's budget starts its first instance of a typology (a share of the
    instance's mean size) is spread evenly over the cells, not drawn apart in each: below any
    share x lie x times the cells' points, give or take two, whatever the seed; another seed
    moves the points."""
    model = model_of("retail-day", seed=seed)
    table = np.array(
        [[CellStream(model, cell).fraud._first_share(i) for i in range(4)] for cell in range(256)]
    )
    assert model.cells == 256 and ((table >= 0) & (table < 1)).all()
    for i in range(4):
        for x in (0.02, 0.1, 0.25, 0.5, 0.9):
            assert abs(int((table[:, i] < x).sum()) - x * model.cells) <= 2, (i, x)
    assert len({round(float(p), 9) for p in table[0]}) == 4  # each typology its own points
    other = model_of("retail-day", seed=str(int(seed) + 10))
    assert CellStream(other, 0).fraud._first_share(0) != table[0, 0]


def test_injected_delays_and_duplicates_keep_every_invariant():
    """Delayed events come later than their successors and duplicates come twice; put back in
    the order they were made, each cell's stream still passes every check."""
    model = model_of(
        "fraud-ring", **{"delivery.out_of_order": "0.1", "delivery.duplicates": "0.05"}
    )
    share = quotas(model, 20_000)
    late = 0
    for cell in range(0, model.cells, 8):
        lines = cell_lines(model, cell, share[cell])
        events = [orjson.loads(line) for line in lines]
        late += sum(e["delayed"] for e in events)
        assert check_stream(events) == [], f"cell {cell}"
    assert late > 100


@pytest.mark.parametrize("zone", ["America/Sao_Paulo", "Asia/Kolkata", "Asia/Kathmandu"])
def test_night_and_daily_limits_hold_in_local_time(zone: str):
    """Replayed from each event's own local time (zones off UTC by 5:30 and 5:45 included): an
    approved capped debit keeps the night's and the day's totals (and a new device's Pix caps)
    within their caps, and a debit declined for the limit would have broken one of them."""
    model = model_of(
        "retail-day",
        **{
            "population.customers": "2000",
            "time.timezone": zone,
            "limits.night.max_total": "20",
            "limits.daily_outgoing": "300",
        },
    )
    limits = model.scenario.limits
    night_max, day_max = limits.night.max_total, limits.daily_outgoing
    assert day_max is not None
    start, end = limits.night.start_hour, limits.night.end_hour
    tz = ZoneInfo(zone)
    share = quotas(model, 30_000)
    capped = {"transfer", "bill_payment", "card_purchase"}
    night_sum: Counter[tuple[str, dt.date]] = Counter()
    day_sum: Counter[tuple[str, dt.date]] = Counter()
    device_sum: Counter[tuple[str, dt.date]] = Counter()
    checked = declined = 0
    for cell in range(model.cells):
        for chunk in CellStream(model, cell, share[cell]).chunks():
            for line in chunk.lines:
                e = orjson.loads(line)
                if e["type"] not in capped or e["direction"] != "debit":
                    continue
                if e["type"] == "bill_payment" and e["counterparty_kind"] == "account":
                    continue  # a credit card's statement paid by automatic debit: no limit
                if e["decline_reason"] not in (None, "limit_exceeded"):
                    continue
                local = dt.datetime.fromtimestamp(e["event_time"] / 1000, tz)
                day = local.date()
                in_night = local.hour >= start or local.hour < end
                night = (e["account"], day if local.hour >= start else day - dt.timedelta(1))
                over = day_sum[e["account"], day] + e["amount"] > day_max or (
                    in_night and night_sum[night] + e["amount"] > night_max
                )
                # a Pix from a new device also meets the new-device caps (per Pix, per day)
                new_pix = e["device"].startswith("D-new-") and e["rail"] == "pix"
                if new_pix:
                    over = over or (
                        e["amount"] > limits.new_device.per_pix
                        or device_sum[e["account"], day] + e["amount"] > limits.new_device.daily
                    )
                checked += 1
                if e["status"] == "approved":
                    assert not over, e
                    day_sum[e["account"], day] += e["amount"]
                    if in_night:
                        night_sum[night] += e["amount"]
                    if new_pix:
                        device_sum[e["account"], day] += e["amount"]
                else:
                    declined += 1
                    assert over, e
    assert checked > 5_000 and declined > 100


def test_check_stream_still_sees_a_swap_among_delayed_events():
    """Putting delayed events back must not hide events of an account that come out of order."""
    model = model_of("fraud-ring", **{"delivery.out_of_order": "0.1"})
    events = [orjson.loads(line) for line in cell_lines(model, 3, 2_000)]
    assert any(e["delayed"] for e in events) and check_stream(events) == []
    by_account: dict[str, list[int]] = {}
    for n, e in enumerate(events):
        if not e["delayed"]:
            by_account.setdefault(e["account"], []).append(n)
    first, second = next(ns[:2] for ns in by_account.values() if len(ns) >= 2)
    events[first], events[second] = events[second], events[first]
    assert check_stream(events) != []


def test_a_dense_short_run_does_not_make_the_fraud_of_days_before_it():
    """A bank of a million customers makes about 9,000 events a cell a day, so a run of 100
    events a cell lasts a quarter of a simulated hour, while the pre-roll holds days of
    instances in flight: only those whose events reach the stream may be made (before the
    pre-roll was lazy, ~1,000 a cell were)."""
    model = model_of("fraud-ring", **{"population.customers": "1000000"})
    cells = range(0, model.cells, 32)
    share = quotas(model, 25_600)
    made = events = 0
    for cell in cells:
        stream = CellStream(model, cell, share[cell])
        events += sum(len(chunk) for chunk in stream.chunks())
        made += stream.fraud.instances
    assert events == sum(share[c] for c in cells)
    assert made < 8 * 100


@pytest.mark.parametrize("name", ["fraud-ring", "payday-rush", "seed-demo"])
def test_a_shorter_run_is_the_start_of_a_longer_one(name: str):
    """A run's events do not depend on how many are asked for: a cell's events of a short run
    are the start of its events in a longer one (the last one aside: a transfer inside the bank
    that would need two events pays outside it), through the stream entry point, by-rate
    (fraud-ring) and accelerated (payday-rush, seed-demo)."""
    loaded = load(name, environ={})
    cells = "0" if name == "seed-demo" else "3"

    def lines(events: int) -> list[str]:
        run = plan(loaded, events=events, cells=cells)
        return [line for batch in RunStream(run).batches() for line in batch.lines]

    short, long = lines(3_000), lines(6_000)
    assert len(short) > 0 and len(long) > len(short)
    assert short[:-1] == long[: len(short) - 1]


@pytest.mark.parametrize(
    "fields",
    [
        (1, 0, 1, 0, 0),
        (2**47, 2**32 - 1, 2**56 - 1, 2**44 - 1, 2**48 - 1),  # the largest of each
        (12_345, 3_906, 1_999_999, -50_400_000, (2 << 40) | 123),  # before 1970 in UTC
        (7, 1, 100, 7_258_118_400_000, (6 << 40) | 49_999),  # in 2200
    ],
)
def test_a_packed_purchase_unpacks_to_what_went_in(fields: tuple[int, int, int, int, int]):
    assert unpack(purchase(*fields)) == fields


def test_takeovers_with_nothing_to_drain_still_move_money():
    """drain_share 0 (and amounts not borrowed from normal traffic) used to leave amounts at 0."""
    model = model_of(
        "fraud-ring",
        **{
            "population.customers": "300",
            "anomalies.typologies.0.drain_share": "0",
            "anomalies.overlap.amount": "0",
        },
    )
    share = quotas(model, 20_000)
    takeovers = 0
    for cell in range(model.cells):
        events = [orjson.loads(line) for line in cell_lines(model, cell, share[cell])]
        takeovers += sum(e["typology"] == "account_takeover" for e in events)
        assert check_stream(events) == [], f"cell {cell}"
    assert takeovers > 20


def test_the_engine_imports_nothing_of_kafka_nor_of_the_producer() -> None:
    """Every module of the engine (loadgen outside loadgen.producer, `generate` included)
    imported: confluent-kafka and the producer stay out of the process."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import importlib, pkgutil, sys, loadgen; "
        "names = [m.name for m in pkgutil.iter_modules(loadgen.__path__, 'loadgen.') "
        "if not m.name.startswith('loadgen.producer')]; "
        "[importlib.import_module(n) for n in names]; "
        "out = ('confluent_kafka', 'loadgen.producer'); "
        "bad = sorted(m for m in sys.modules if m.startswith(out)); "
        "print(len(names), bad); sys.exit(1 if bad or len(names) < 15 else 0)"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
