"""Every bundled scenario validates, resolves, and reads back to the same scenario."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from scenarios import Scenario, bundled_names, dump_yaml, load
from scenarios.cli import scenario_schema
from tests.conftest import ROOT, invoke

BUNDLED = ["fraud-ring", "max-throughput", "payday-rush", "retail-day", "seed-demo", "soak"]


def test_the_bundled_set():
    assert bundled_names() == BUNDLED


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenario_validates_and_show_resolves_it(name: str, tmp_path: Path):
    loaded = load(name, environ={})
    assert loaded.scenario.name == name
    assert loaded.scenario.first_line
    done = invoke("scenarios", "show", name, env={"BANKSTREAM_SCENARIO_SET": ""})
    assert done.returncode == 0, done.stderr
    assert f"# digest: sha256:{loaded.digest}" in done.stdout
    # what show prints is itself a valid scenario, equal to the one it came from
    resolved = tmp_path / f"{name}.yaml"
    resolved.write_text(done.stdout)
    again = load(str(resolved), environ={})
    assert again.scenario == loaded.scenario
    assert again.digest == loaded.digest


def test_validate_accepts_every_bundled_file():
    files = [str(ROOT / "scenarios" / "bundled" / f"{n}.yaml") for n in BUNDLED]
    done = invoke("scenarios", "validate", *files)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": ok (") == len(BUNDLED)


def test_list_names_each_with_one_line():
    done = invoke("scenarios", "list", "--json")
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["name"] for r in rows] == BUNDLED
    assert all(r["description"] and "\n" not in r["description"] for r in rows)
    text = invoke("scenarios", "list").stdout
    assert all(name in text for name in BUNDLED)


def test_schema_is_current_and_accepts_the_bundled_files():
    done = invoke("scenarios", "schema")
    schema = json.loads(done.stdout)
    committed = json.loads((ROOT / "docs" / "scenario.schema.json").read_text())
    assert schema == committed == scenario_schema(), "run: bankstream scenarios schema > docs/..."
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in BUNDLED:
        raw = yaml.safe_load((ROOT / "scenarios" / "bundled" / f"{name}.yaml").read_text())
        resolved = yaml.safe_load(dump_yaml(load(name, environ={}).scenario))
        for doc in (raw, resolved):
            errors = [
                e.message for e in validator.iter_errors(json.loads(json.dumps(doc, default=str)))
            ]
            assert errors == [], (name, errors)
    # and it rejects what the model rejects
    assert not validator.is_valid({"name": "x", "population": {"customers": 0}, "load": {}})


def test_realism_anchors_of_retail_day():
    s = load("retail-day", environ={}).scenario
    assert s.population.customers == 100_000
    hours = s.time.hour_weights
    assert abs(sum(hours[17:]) / sum(hours) - 0.38) < 0.01  # BCB: 38% of weekday Pix from 17h
    weekdays = s.time.weekday_weights
    assert abs(sum(weekdays[:5]) / sum(weekdays) - 0.77) < 0.01  # Mon-Fri about 77%
    assert "doc" not in s.transaction_types.transfer.rails  # DOC closed in Feb 2024
    assert 0.00005 < s.anomalies.total_rate < 0.0005


def test_seed_demo_keeps_the_original_demo():
    s = load("seed-demo", environ={}).scenario
    assert len(s.population.named_customers) == 12 == s.population.customers
    labels = {
        t: getattr(s.transaction_types, t).label
        for t in ("deposit", "refund", "withdrawal", "transfer", "bill_payment")
    }
    assert labels == {
        "deposit": "deposito",
        "refund": "estorno",
        "withdrawal": "saque",
        "transfer": "transferencia",
        "bill_payment": "pagamento de boleto",
    }
    assert set(s.transaction_types.transfer.rails) == {"pix", "ted", "doc"}
    assert set(s.population.segments[0].channels) == {"mobile", "web"}
    assert s.load.rate == 1


def test_money_is_cents():
    s = Scenario.model_validate(
        {
            "name": "m",
            "population": {"customers": 1},
            "load": {"rate": 1, "events": 1},
            "transaction_types": {"fee": {"amount": {"median": "12.34", "min": 0.01, "max": 100}}},
        }
    )
    fee = s.transaction_types.fee.amount
    assert (fee.median, fee.min, fee.max) == (1234, 1, 10000)
    assert all(isinstance(v, int) for v in (fee.median, fee.min, fee.max))
