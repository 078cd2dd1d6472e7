"""Property: any valid scenario round-trips through YAML unchanged (model -> YAML -> model)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenarios import Scenario, dump_yaml, load
from scenarios.model import THRESHOLD_METRICS
from scenarios.reference import CHANNELS, MCC, MixType

names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
cents = st.integers(min_value=1, max_value=10**10)
weights = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
durations = st.one_of(
    st.integers(min_value=1, max_value=10**7),
    st.floats(min_value=0.001, max_value=1e7, allow_nan=False, allow_infinity=False),
    st.sampled_from(["250ms", "30s", "10m", "1.5h", "2d"]),
)
money_forms = st.sampled_from(["float", "str", "int"])


def money(value_cents: int, form: str) -> Any:
    if form == "int" and value_cents % 100 == 0:
        return value_cents // 100
    if form == "str":
        return f"{value_cents // 100}.{value_cents % 100:02d}"
    return value_cents / 100


@st.composite
def amounts(draw: st.DrawFn) -> dict[str, Any]:
    lo, mid, hi = sorted(draw(st.lists(cents, min_size=3, max_size=3)))
    form = draw(money_forms)
    out: dict[str, Any] = {
        "median": money(mid, form),
        "sigma": draw(st.floats(0, 4)),
        "min": money(lo, form),
    }
    if draw(st.booleans()):
        out["max"] = money(hi, form)
    return out


@st.composite
def weight_map(draw: st.DrawFn, keys: list[str]) -> dict[str, float]:
    chosen = draw(st.lists(st.sampled_from(keys), min_size=1, unique=True))
    values = {k: draw(weights) for k in chosen}
    values[chosen[0]] = draw(st.floats(min_value=0.01, max_value=1e6))
    return values


@st.composite
def segments(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 4))
    raw = [draw(st.integers(1, 1000)) for _ in range(count)]
    shares = [r / sum(raw) for r in raw]
    out = []
    for i, share in enumerate(shares):
        segment: dict[str, Any] = {"name": f"seg-{i}", "share": share}
        if draw(st.booleans()):
            segment["activity"] = {
                "mean_per_day": draw(st.floats(0.01, 100)),
                "shape": draw(st.floats(0.05, 50)),
            }
        if draw(st.booleans()):
            segment["channels"] = draw(weight_map(list(CHANNELS)))
        if draw(st.booleans()):
            segment["mix"] = draw(weight_map(list(get_args(MixType))))
        if draw(st.booleans()):
            segment["initial_balance"] = {
                "zero_share": draw(st.floats(0, 1)),
                "median": money(draw(cents), "float"),
            }
        if draw(st.booleans()):
            segment["pay_schedule"] = draw(
                st.sampled_from(
                    [
                        {"kind": "monthly", "day": 5},
                        {"kind": "biweekly", "weekday": "friday"},
                        {"kind": "days", "days": [1, 15]},
                    ]
                )
            )
        if draw(st.booleans()):
            segment["overdraft"] = {"kind": "fixed", "amount": money(draw(cents), "str")}
        out.append(segment)
    return out


@st.composite
def loads(draw: st.DrawFn) -> dict[str, Any]:
    shape = draw(st.sampled_from(["stages", "rate_duration", "rate_events", "max"]))
    if shape == "stages":
        return {
            "stages": [
                {
                    "duration": draw(durations),
                    "rate": draw(st.floats(0.1, 1e6)),
                    "ramp": draw(st.sampled_from(["step", "linear"])),
                }
                for _ in range(draw(st.integers(1, 4)))
            ]
        }
    if shape == "rate_duration":
        return {"rate": draw(st.floats(0.1, 1e6)), "duration": draw(durations)}
    if shape == "rate_events":
        return {"rate": draw(st.integers(1, 10**6)), "events": draw(st.integers(1, 10**9))}
    return {"rate": "max", "events": draw(st.integers(1, 10**9))}


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": draw(names),
        "description": draw(st.text(max_size=80)),
        "seed": draw(st.integers(0, 2**63 - 1)),
        "population": {"customers": draw(st.integers(1, 10**8)), "segments": draw(segments())},
        "load": draw(loads()),
    }
    if draw(st.booleans()):
        doc["merchants"] = {
            "count": draw(st.integers(1, 10**6)),
            "zipf_exponent": draw(st.floats(0.01, 5)),
            "categories": {
                cat: {"weight": draw(st.floats(0.01, 100)), "amount": draw(amounts())}
                for cat in draw(
                    st.lists(st.sampled_from(sorted(MCC)), min_size=1, max_size=4, unique=True)
                )
            },
        }
    if draw(st.booleans()):
        doc["transaction_types"] = {
            "fee": {"amount": draw(amounts())},
            "transfer": {
                "amount": draw(amounts()),
                "rails": draw(weight_map(["pix", "ted", "doc"])),
                "internal_share": draw(st.floats(0, 1)),
            },
        }
    if draw(st.booleans()):
        doc["time"] = {
            "start": draw(
                st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1))
            ).replace(microsecond=0),
            "timezone": draw(st.sampled_from(["America/Sao_Paulo", "UTC", "Europe/Lisbon"])),
            "mode": draw(st.sampled_from(["accelerated", "by_rate"])),
            "acceleration": draw(st.floats(0.01, 1e6)),
            "hour_weights": [draw(weights) for _ in range(23)] + [1.0],
            "spikes": [
                {
                    "kind": "date",
                    "date": draw(st.dates(dt.date(2000, 1, 1))),
                    "multiplier": draw(st.floats(0.1, 100)),
                }
            ],
        }
    if draw(st.booleans()):
        kinds = draw(
            st.lists(
                st.sampled_from(["account_takeover", "card_testing", "structuring", "mule_ring"]),
                max_size=4,
            )
        )
        doc["anomalies"] = {
            "typologies": [{"kind": k, "rate": draw(st.floats(1e-9, 0.1))} for k in kinds],
            "overlap": {"amount": draw(st.floats(0, 1)), "time": draw(st.floats(0, 1))},
        }
    if draw(st.booleans()):
        metrics = [
            m
            for m in THRESHOLD_METRICS
            if not (m == "produce_rate_ratio" and doc["load"].get("rate") == "max")
        ]
        doc["thresholds"] = {
            m: [
                f"{draw(st.sampled_from(['<', '<=', '>', '>=', '==', '!=']))} "
                f"{draw(st.integers(0, 10**6))}{draw(st.sampled_from(['', 's', 'ms']))}"
            ]
            for m in draw(st.lists(st.sampled_from(metrics), min_size=1, unique=True))
        }
    if draw(st.booleans()):
        doc["delivery"] = {
            "partitions": draw(st.integers(1, 10000)),
            "acks": draw(st.sampled_from(["all", 1, 0, "1"])),
            "compression": draw(st.sampled_from(["none", "lz4", "zstd"])),
            "duplicates": draw(st.floats(0, 0.5)),
        }
    return doc


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_any_valid_scenario_round_trips_through_yaml(doc: dict[str, Any]):
    scenario = Scenario.model_validate(doc)
    text = dump_yaml(scenario, mask_secrets=False)
    again = Scenario.model_validate(yaml.safe_load(text))
    assert again == scenario
    assert dump_yaml(again, mask_secrets=False) == text


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenarios())
def test_round_trip_through_a_file_and_the_loader(tmp_path: Path, doc: dict[str, Any]):
    scenario = Scenario.model_validate(doc)
    path = tmp_path / "s.yaml"
    path.write_text(dump_yaml(scenario, mask_secrets=False))
    assert load(str(path), environ={}).scenario == scenario
