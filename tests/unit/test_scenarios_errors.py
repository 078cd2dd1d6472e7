"""Bad scenario input: each problem its own line, FILE:LINE: path: message, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import ScenarioError, load
from tests.conftest import invoke

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
    done = invoke("scenarios", "validate", str(path))
    return done.returncode, done.stderr.strip().splitlines()


def test_a_good_file(tmp_path: Path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    done = invoke("scenarios", "validate", str(path))
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
        (
            GOOD + "population:\n  customers: 3\n",
            "{f}:7: population: duplicate key (first at line 2)",
        ),
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
    done = invoke(
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
    done = invoke("scenarios", "validate", str(tmp_path / "a.yaml"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"{tmp_path / 'b.yaml'}:2: extends: extends cycle: {tmp_path / 'a.yaml'} -> "
        f"{tmp_path / 'b.yaml'} -> {tmp_path / 'a.yaml'}"
    )


def test_extends_missing_parent(tmp_path: Path):
    code, lines = validate(tmp_path, "name: orphan\nextends: retail-dya\n")
    assert code == 2
    assert lines == [
        f"{tmp_path / 's.yaml'}:2: extends: no scenario 'retail-dya'; did you mean 'retail-day'? "
        "(bundled: fraud-ring, max-throughput, payday-rush, retail-day, seed-demo, soak; or give "
        "a path relative to this file)"
    ]


def test_problem_in_a_parent_points_at_the_parent(tmp_path: Path):
    (tmp_path / "base.yaml").write_text(
        GOOD.replace("customers: 10", "customers: 10\n  cities: []")
    )
    code, lines = validate(tmp_path, "name: child\nextends: base\nseed: 9\n")
    assert code == 2
    assert lines == [
        f"{tmp_path / 'base.yaml'}:4: population.cities: "
        "expected at least 1 item, got an empty list"
    ]


def test_unknown_scenario_name():
    done = invoke("scenarios", "show", "retail-dya")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "retail-dya: no such scenario or file; did you mean 'retail-day'? (bundled: fraud-ring, "
        "max-throughput, payday-rush, retail-day, seed-demo, soak)"
    )


def test_bad_overrides_all_reported():
    done = invoke(
        "scenarios",
        "show",
        "retail-day",
        "--set",
        "load.rate=-3",
        "--set",
        "population.segments.7.share=1",
        "--set",
        "load.rat",
        "--set",
        "population.segments.-1.share=1",
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "--set: population.segments.7: index out of range (the list has 3 items)",
        "--set: expected path.to.key=value (a key with dots in [brackets]), got 'load.rat'",
        "--set: population.segments.-1: expected a list index (0, 1, ...) here, got '-1'",
        "--set: load.rate: expected a value > 0 or 'max', got -3",
    ]


def test_a_prepaid_top_up_interval_is_whole_days():
    done = invoke(
        "scenarios",
        "show",
        "retail-day",
        "--set",
        "transaction_types.card_purchase.prepaid.top_up_every=36h",
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "--set: transaction_types.card_purchase.prepaid.top_up_every: top_up_every is in whole "
        "days (e.g. 30d); 1.5 days is not"
    )


def test_override_problem_blamed_on_the_override():
    done = invoke(
        "scenarios", "show", "retail-day", env={"BANKSTREAM_SCENARIO_SET": "load.events=2000"}
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "BANKSTREAM_SCENARIO_SET: load: warmup (5 s) must be shorter than the run (0.4 s)"
    )
    done = invoke(
        "scenarios",
        "show",
        "retail-day",
        env={"BANKSTREAM_SCENARIO_SET": "seed=7; load.events=100000"},
    )
    assert done.returncode == 0
    assert "# overrides: seed=7 (BANKSTREAM_SCENARIO_SET), load.events=100000" in done.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0x1f: 1\n", "{f}:1: key '0x1f' must be text (quote it)"),
        (GOOD + "yes: 1\n", "{f}:7: key 'yes' must be text (quote it)"),
        ("? [a, b]\n: 1\n", "{f}:1: invalid YAML: found unhashable key"),
        (
            "name: ok\nx: a\x07b\n",
            "{f}:2: invalid YAML: unacceptable character #x0007: special characters are not "
            "allowed",
        ),
        (
            GOOD + "time: {timezone: America}\n",
            "{f}:7: time.timezone: unknown time zone 'America' (expected an IANA name such as "
            "America/Sao_Paulo)",
        ),
        (GOOD + "population: {customers: true}\n", None),
        (
            GOOD.replace("customers: 10", "customers: true"),
            "{f}:3: population.customers: expected a whole number, got true",
        ),
        (
            GOOD.replace("customers: 10", "customers: '100'"),
            "{f}:3: population.customers: expected a whole number, got '100'",
        ),
        (
            GOOD + "limits: {daily_outgoing: 100000000000000000000}\n",
            "{f}:7: limits.daily_outgoing: expected an amount of at most 10,000,000,000,000 (got "
            "'100000000000000000000')",
        ),
        (
            GOOD.replace("duration: 1m", "duration: .inf"),
            "{f}:6: load.duration: expected a duration between 0 and 10 years, got inf",
        ),
        (
            GOOD + "population:\n  customers: 10\n  segments:\n    - {name: a, share: 1, "
            "channels: {}}\n",
            None,
        ),
        (
            GOOD + "delivery: {topic: '..'}\n",
            "{f}:7: delivery.topic: '..' is not a valid Kafka topic name",
        ),
        (
            GOOD + "sink: {collections: {runs: system.profile}}\n",
            "{f}:7: sink.collections.runs: 'system.profile': system.* collections are "
            "MongoDB's own",
        ),
        (
            GOOD.replace("duration: 1m", "duration: 1m\n  events: 100"),
            "{f}:4: load: give a duration or a number of events, not both",
        ),
        (
            GOOD + "time: {start: 2025-03-10T08:00:00+09:00}\n",
            "{f}:7: time.start: give start without a UTC offset: it is local time in `timezone`",
        ),
        (
            GOOD + "limits: {night: {start_hour: 3, end_hour: 3}}\n",
            "{f}:7: limits.night: start_hour and end_hour are equal: the night would last no time "
            "(or all day)",
        ),
        (GOOD + "transaction_types: {fee: {amount: {median: 0.5}}}\n", ""),
    ],
)
def test_more_bad_input(tmp_path: Path, text: str, expected: str | None):
    code, lines = validate(tmp_path, text)
    if expected == "":  # valid
        assert code == 0, lines
        return
    assert code == 2
    if expected is not None:
        assert expected.format(f=tmp_path / "s.yaml") in lines, lines
    assert all(":" in line for line in lines)


def test_scenario_error_is_a_usage_error():
    with pytest.raises(ScenarioError) as err:
        load("/no/such/file.yaml")
    assert err.value.exit_code == 2
