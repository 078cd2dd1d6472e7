"""Bad scenario input: each problem its own line, FILE:LINE: path: message, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import ScenarioError, load
from tests.conftest import run_cli

GOOD = """\
name: mine
population:
  customers: 10
load:
  rate: 5
  duration: 1m
"""


def validate(tmp_path: Path, text: str, name: str = "s.yaml") -> tuple[int, list[str]]:
    path = tmp_path / name
    path.write_text(text)
    done = run_cli("scenarios", "validate", str(path))
    return done.returncode, done.stderr.strip().splitlines()


def test_a_good_file(tmp_path: Path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    done = run_cli("scenarios", "validate", str(path))
    assert done.returncode == 0
    assert done.stdout.strip() == f"{path}: ok (mine)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [\n", "{f}:2: invalid YAML: expected the node content, but found '<stream end>'"),
        ("", "{f}:1: empty file (expected a mapping with at least name, population and load)"),
        (
            "# only a comment\n",
            "{f}:1: empty file (expected a mapping with at least name, population and load)",
        ),
        (
            "- name: x\n- name: y\n",
            "{f}:1: expected a mapping of scenario keys at the top, got a list",
        ),
        (
            "just text\n",
            "{f}:1: expected a mapping of scenario keys at the top, got str 'just text'",
        ),
        (
            GOOD.replace("customers: 10", "customers: ten"),
            "{f}:3: population.customers: expected a whole number, got 'ten'",
        ),
        (
            GOOD.replace("population:\n  customers: 10", "population: [1, 2]"),
            "{f}:2: population: expected a mapping, got a list",
        ),
        (
            GOOD.replace("rate: 5", "rate: -5"),
            "{f}:5: load.rate: expected a value > 0 or 'max', got -5",
        ),
        (
            GOOD.replace("rate: 5", "rate: 0"),
            "{f}:5: load.rate: expected a value > 0 or 'max', got 0",
        ),
        (
            GOOD.replace("customers: 10", "customers: 0"),
            "{f}:3: population.customers: expected a value > 0, got 0",
        ),
        (
            GOOD.replace("customers: 10", "custmers: 10"),
            "{f}:3: population.custmers: unknown key; did you mean 'customers'?",
        ),
        (GOOD + "sede: 4\n", "{f}:7: sede: unknown key; did you mean 'seed'?"),
        (
            GOOD + "time:\n  weekday_weights: [0, 0, 0, 0, 0, 0, 0]\n",
            "{f}:8: time.weekday_weights: weekday weights sum to zero (expected at least one "
            "positive weight)",
        ),
        (
            GOOD + "time:\n  hour_weights: [1, 2]\n",
            "{f}:8: time.hour_weights: hour_weights needs 24 weights (got 2)",
        ),
        (
            GOOD.replace(
                "customers: 10",
                "customers: 10\n  segments:\n    - {name: a, share: 0.5}\n"
                "    - {name: b, share: 0.4}",
            ),
            "{f}:4: population.segments: segment shares must sum to 1 (got 0.9)",
        ),
        (
            GOOD + "anomalies:\n  typologies:\n    - {kind: phishing, rate: 0.01}\n",
            "{f}:9: anomalies.typologies.0.kind: unknown typology 'phishing' (expected one of "
            "'account_takeover', 'card_testing', 'structuring', 'mule_ring')",
        ),
        (
            GOOD + "anomalies:\n  typologies:\n    - {kind: card_testng, rate: 0.01}\n",
            "{f}:9: anomalies.typologies.0.kind: unknown typology 'card_testng'; did you mean "
            "'card_testing'? (expected one of 'account_takeover', 'card_testing', 'structuring', "
            "'mule_ring')",
        ),
        (
            GOOD + "anomalies:\n  typologies:\n    - {kind: structuring, rate: 0}\n",
            "{f}:9: anomalies.typologies.0.rate: expected a value > 0, got 0",
        ),
        (
            GOOD.replace("duration: 1m", "duration: soon"),
            "{f}:6: load.duration: expected a duration such as 30s, 10m or 1h, got 'soon'",
        ),
        (
            GOOD.replace("  duration: 1m\n", ""),
            "{f}:4: load: a rate needs a duration or a number of events",
        ),
        (
            GOOD + "thresholds:\n  lost: '= 0'\n",
            "{f}:8: thresholds.lost: expected a condition such as '< 2s', '>= 0.98' or '== 0', "
            "got '= 0'",
        ),
        (
            GOOD + "delivery:\n  compression: brotli\n",
            "{f}:8: delivery.compression: expected one of 'none', 'gzip', 'snappy', 'lz4' or "
            "'zstd', got 'brotli'",
        ),
        (GOOD + "population:\n  customers: 3\n", "{f}:7: population: duplicate key"),
        (
            GOOD + "transaction_types:\n  fee:\n    amount: {median: 1.234}\n",
            "{f}:9: transaction_types.fee.amount.median: expected at most 2 decimals (whole "
            "cents), got '1.234'",
        ),
    ],
)
def test_each_bad_input_has_its_own_message(tmp_path: Path, text: str, expected: str):
    code, lines = validate(tmp_path, text)
    assert code == 2
    assert lines == [expected.format(f=tmp_path / "s.yaml")]


def test_every_problem_at_once(tmp_path: Path):
    text = (
        GOOD.replace("customers: 10", "customers: -1\n  custmers: 3").replace(
            "rate: 5", "rate: fast"
        )
        + "delivery:\n  partitions: 0\n"
    )
    code, lines = validate(tmp_path, text)
    f = tmp_path / "s.yaml"
    assert code == 2
    assert lines == [
        f"{f}:3: population.customers: expected a value > 0, got -1",
        f"{f}:4: population.custmers: unknown key; did you mean 'customers'?",
        f"{f}:6: load.rate: expected a number or 'max', got 'fast'",
        f"{f}:9: delivery.partitions: expected a value >= 1, got 0",
    ]


def test_missing_required_keys(tmp_path: Path):
    code, lines = validate(tmp_path, "name: lonely\n")
    f = tmp_path / "s.yaml"
    assert code == 2
    assert lines == [
        f"{f}:1: population: required key is missing",
        f"{f}:1: load: required key is missing",
    ]


def test_several_files_all_reported(tmp_path: Path):
    (tmp_path / "a.yaml").write_text(GOOD.replace("rate: 5", "rate: -1"))
    (tmp_path / "b.yaml").write_text(GOOD)
    (tmp_path / "c.yaml").write_text("")
    done = run_cli(
        "scenarios",
        "validate",
        *(str(tmp_path / n) for n in ("a.yaml", "b.yaml", "c.yaml", "d.yaml")),
    )
    assert done.returncode == 2
    assert done.stdout.strip() == f"{tmp_path / 'b.yaml'}: ok (mine)"
    assert done.stderr.strip().splitlines() == [
        f"{tmp_path / 'a.yaml'}:5: load.rate: expected a value > 0 or 'max', got -1",
        f"{tmp_path / 'c.yaml'}:1: empty file (expected a mapping with at least name, "
        "population and load)",
        f"{tmp_path / 'd.yaml'}: no such file",
    ]


def test_extends_cycle(tmp_path: Path):
    (tmp_path / "a.yaml").write_text("name: a\nextends: b\n")
    (tmp_path / "b.yaml").write_text("name: b\nextends: a.yaml\n")
    done = run_cli("scenarios", "validate", str(tmp_path / "a.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"{tmp_path / 'b.yaml'}:2: extends: extends cycle: {tmp_path / 'a.yaml'} -> "
        f"{tmp_path / 'b.yaml'} -> {tmp_path / 'a.yaml'}"
    )


def test_extends_missing_parent(tmp_path: Path):
    code, lines = validate(tmp_path, "name: orphan\nextends: retail-dya\n")
    assert code == 2
    assert lines == [
        f"{tmp_path / 's.yaml'}:2: extends: no scenario 'retail-dya' (bundled: fraud-ring, "
        "max-throughput, payday-rush, retail-day, seed-demo, soak; or give a path relative to "
        "this file)"
    ]


def test_problem_in_a_parent_points_at_the_parent(tmp_path: Path):
    (tmp_path / "base.yaml").write_text(
        GOOD.replace("customers: 10", "customers: 10\n  cities: []")
    )
    code, lines = validate(tmp_path, "name: child\nextends: base\nseed: 9\n")
    assert code == 2
    assert lines == [
        f"{tmp_path / 'base.yaml'}:4: population.cities: expected at least 1 item(s), got a list"
    ]


def test_unknown_scenario_name():
    done = run_cli("scenarios", "show", "retail-dya")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "retail-dya: no such scenario or file; did you mean 'retail-day'? (bundled: fraud-ring, "
        "max-throughput, payday-rush, retail-day, seed-demo, soak)"
    )


def test_bad_override():
    done = run_cli(
        "scenarios",
        "show",
        "retail-day",
        "--set",
        "load.rate=-3",
        "--set",
        "population.segments.7.share=1",
        "--set",
        "load.rat",
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "--set: expected path.to.key=value (a key with dots in [brackets]), got 'load.rat'",
    ]
    done = run_cli(
        "scenarios",
        "show",
        "retail-day",
        "--set",
        "load.rate=-3",
        "--set",
        "population.segments.7.share=1",
    )
    assert done.stderr.strip().splitlines() == [
        "--set: population.segments.7: index out of range (the list has 3 item(s))",
        "--set: load.rate: expected a value > 0 or 'max', got -3",
    ]


def test_scenario_error_is_a_usage_error():
    with pytest.raises(ScenarioError) as err:
        load("/no/such/file.yaml")
    assert err.value.exit_code == 2
