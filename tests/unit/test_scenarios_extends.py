"""extends (deep override), --set and the environment: who wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from scenarios import load

BASE = """\
name: base
seed: 1
population:
  customers: 100
  segments:
    - {name: a, share: 0.5, activity: {mean_per_day: 2}}
    - {name: b, share: 0.5}
delivery:
  partitions: 6
  compression: zstd
load:
  rate: 10
  events: 1000
"""


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "child.yaml").write_text(
        "name: child\nextends: base\nseed: 2\n"
        "delivery:\n  partitions: 3\n"  # a mapping merges key by key
        "population:\n  segments:\n    - {name: only, share: 1.0}\n"  # a list is replaced
        "load:\n  events: null\n  duration: 1m\n"  # null removes the parent's key
    )
    return tmp_path


def test_child_overrides_parent_deeply(files: Path):
    loaded = load(str(files / "child.yaml"), environ={})
    s = loaded.scenario
    assert (s.name, s.seed) == ("child", 2)
    assert (s.delivery.partitions, s.delivery.compression) == (3, "zstd")
    assert s.population.customers == 100
    assert [seg.name for seg in s.population.segments] == ["only"]
    assert (s.load.rate, s.load.events, s.load.duration) == (10, None, 60)
    assert loaded.chain == [str(files / "child.yaml"), str(files / "base.yaml")]
    assert s.extends is None


def test_grandparent_chain_and_bundled_parent(tmp_path: Path):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nextends: payday-rush\npopulation:\n  customers: 50\n"
    )
    loaded = load(str(tmp_path / "mine.yaml"), environ={})
    assert loaded.chain == [
        str(tmp_path / "mine.yaml"),
        "<bundled>/payday-rush.yaml",
        "<bundled>/retail-day.yaml",
    ]
    s = loaded.scenario
    assert s.population.customers == 50
    assert len(s.population.segments) == 3  # from retail-day
    assert s.load.stages is not None and s.load.rate is None  # from payday-rush


def test_precedence_cli_over_env_over_file(files: Path):
    path = str(files / "child.yaml")
    env = {"BANKSTREAM_SCENARIO_SET": "seed=7; delivery.partitions=9\nload.rate=max"}
    s = load(path, environ=env).scenario
    assert (s.seed, s.delivery.partitions, s.load.rate) == (7, 9, "max")
    s = load(path, overrides=["seed=8", "population.segments.0.name=solo"], environ=env).scenario
    assert (s.seed, s.delivery.partitions, s.population.segments[0].name) == (8, 9, "solo")


def test_override_values_are_yaml(files: Path):
    s = load(
        str(files / "base.yaml"),
        environ={},
        overrides=[
            "time.hour_weights=[" + ",".join(["1"] * 24) + "]",
            "delivery.kafka_config[linger.ms]=20",
            "delivery.kafka_config[client.id]=bank-01",
        ],
    ).scenario
    assert s.time.hour_weights == [1.0] * 24
    assert s.delivery.kafka_config == {"linger.ms": 20, "client.id": "bank-01"}


def test_digest_changes_with_the_scenario(files: Path):
    a = load(str(files / "base.yaml"), environ={})
    b = load(str(files / "base.yaml"), environ={}, overrides=["seed=2"])
    assert a.digest == load(str(files / "base.yaml"), environ={}).digest
    assert a.digest != b.digest


def test_setting_one_threshold_keeps_the_default_others():
    from scenarios import load

    thresholds = load("seed-demo", overrides=["thresholds.e2e_latency_p50_seconds=< 1ms"]).scenario
    metrics = set(thresholds.thresholds)
    assert {"e2e_latency_p50_seconds", "lost", "duplicates", "produce_rate_ratio"} <= metrics
    whole = load("seed-demo", overrides=['thresholds={"lost": "== 0"}']).scenario
    assert set(whole.thresholds) == {"lost"}  # a whole mapping still replaces
    dropped = load("max-throughput", overrides=["thresholds.lost=null"]).scenario
    assert "lost" not in dropped.thresholds and "duplicates" in dropped.thresholds
