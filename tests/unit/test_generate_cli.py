"""`bankstream generate` as a user runs it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from bankstream.events import EVENT_SCHEMA
from tests.conftest import ROOT, invoke


def test_events_follow_the_contract_in_time_order():
    done = invoke("generate", "seed-demo", "--events", "300", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == 300
    validator = jsonschema.Draft202012Validator(EVENT_SCHEMA)
    for e in events:
        assert list(validator.iter_errors(e)) == []
        assert list(e) == list(EVENT_SCHEMA["properties"])
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    assert {e["customer_name"] for e in events} <= {
        "Ana Souza",
        "Bruno Lima",
        "Carla Mendes",
        "Diego Ferreira",
        "Eduarda Rocha",
        "Felipe Araújo",
        "Gabriela Costa",
        "Henrique Alves",
        "Isabela Martins",
        "João Pereira",
        "Larissa Gomes",
        "Marcos Ribeiro",
    }
    assert {e["label"] for e in events} >= {"deposito", "saque", "transferencia"}


def test_schema_in_docs_is_current():
    committed = json.loads((ROOT / "docs" / "event.schema.json").read_text())
    assert committed == json.loads(json.dumps(EVENT_SCHEMA))


@pytest.mark.slow
def test_same_command_same_bytes_and_cells_split(tmp_path: Path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        done = invoke("generate", "retail-day", "--events", "5000", "-o", str(out))
        assert done.returncode == 0
        assert done.stdout == ""
        assert "generated 5,000 events of retail-day" in done.stderr
    assert a.read_bytes() == b.read_bytes()
    halves = [
        invoke("generate", "retail-day", "--events", "5000", "--cells", cells, "-q").stdout
        for cells in ("0-127", "128-255")
    ]
    assert Counter("".join(halves).splitlines()) == Counter(a.read_text().splitlines())
    other = invoke("generate", "retail-day", "--events", "5000", "--seed", "5", "-q").stdout
    assert other != a.read_text()


def test_keys_prefix_lines_with_the_account():
    done = invoke("generate", "retail-day", "--events", "200", "--keys", "-q")
    for line in done.stdout.splitlines():
        key, _, event = line.partition("\t")
        assert json.loads(event)["account"] == key


@pytest.mark.slow
def test_injected_duplicates_and_delays_are_marked():
    done = invoke(
        "generate",
        "retail-day",
        "--events",
        "20000",
        "-q",
        "--set",
        "delivery.duplicates=0.01",
        "--set",
        "delivery.out_of_order=0.01",
    )
    events = [json.loads(line) for line in done.stdout.splitlines()]
    dups = [e for e in events if e["duplicate"]]
    late = [e for e in events if e["delayed"]]
    assert 100 < len(dups) < 320 and 100 < len(late) < 320
    ids = Counter(e["tx_id"] for e in events)
    assert all(ids[e["tx_id"]] == 2 for e in dups)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["retail-day", "--events", "10", "--cells", "9-3"],
            "bankstream: error: --cells 9-3: the first cell is after the last (did you mean 3-9?)",
        ),
        (
            ["retail-day", "--events", "10", "--cells", "0-999"],
            "bankstream: error: --cells 0-999: this scenario has cells 0-255",
        ),
        (["retail-day", "--events", "0"], "bankstream: error: --events must be positive, got 0"),
        (
            ["retail-day", "--events", "ten"],
            "bankstream generate: error: argument --events: invalid int value: 'ten' (see "
            "bankstream generate --help)",
        ),
        (
            ["retail-day", "--seed", "-1", "--events", "5"],
            "bankstream: error: --seed must be between 0 and 2^63 - 1, got -1",
        ),
        (
            ["max-throughput", "--set", "load.events=null", "--set", "load.duration=1m"],
            "bankstream: error: max-throughput sends as fast as it can for 1m: give --events N",
        ),
        (
            ["retail-dya", "--events", "5"],
            "retail-dya: no such scenario or file; did you mean 'retail-day'? (bundled: "
            "fraud-ring, max-throughput, payday-rush, retail-day, seed-demo, soak)",
        ),
        (
            ["retail-day", "--events", "5", "--evnts", "3"],
            "bankstream: error: unrecognized arguments: --evnts (did you mean --events?) 3 (see "
            "bankstream --help)",
        ),
    ],
)
def test_bad_flags(args: list[str], expected: str):
    done = invoke("generate", *args)
    assert done.returncode == 2
    assert done.stderr.strip() == expected
    assert done.stdout == ""


def test_events_doc_names_every_field_and_its_example_is_valid():
    doc = (ROOT / "docs" / "events.md").read_text()
    for key in EVENT_SCHEMA["properties"]:
        assert f"| `{key}` |" in doc
    example = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    assert list(jsonschema.Draft202012Validator(EVENT_SCHEMA).iter_errors(example)) == []


def test_a_load_too_dense_for_its_population_is_refused_before_the_output_is_touched(
    tmp_path: Path,
):
    """retail-day at 5,000 events/s with simulated time at the wall clock's pace would need
    every customer to act thousands of times their own pace: exit 2, one line naming the
    acceleration and the population that would fit, and an existing output file untouched."""
    out = tmp_path / "events.jsonl"
    out.write_text("keep me\n")
    done = invoke(
        "generate",
        "retail-day",
        "--events",
        "1000",
        "-o",
        str(out),
        "--set",
        "time.mode=accelerated",
        "--set",
        "time.acceleration=1",
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "time.acceleration to at least" in lines[0]
    assert "population.customers to at least" in lines[0]
    assert out.read_text() == "keep me\n"


def test_cells_out_of_range_are_refused_before_the_output_is_touched(tmp_path: Path):
    out = tmp_path / "events.jsonl"
    out.write_text("keep me\n")
    done = invoke("generate", "seed-demo", "--events", "10", "--cells", "0-3", "-o", str(out))
    assert done.returncode == 2
    assert done.stderr.strip() == "bankstream: error: --cells 0-3: this scenario has cells 0-0"
    assert out.read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["retail-dya"], "retail-dya: no such scenario or file; did you mean 'retail-day'?"),
        (["retail-day", "--rate", "-5"], "--rate must be a positive number of events per second"),
        (["retail-day", "--rate", "fast"], "--rate must be a positive number of events per second"),
        (["retail-day", "--shard", "3/2", "--run-id", "x"], "--shard expects I/N with 0 <= I < N"),
        (["retail-day", "--shard", "0/2"], "--shard needs --run-id"),
        (["retail-day", "--cells", "9-3"], "--cells 9-3: the first cell is after the last"),
        (["retail-day", "--cells", "0-999"], "--cells 0-999: this scenario has cells 0-255"),
        (["retail-day", "--events", "0"], "--events must be a positive whole number"),
        (["retail-day", "--duration", "soon"], "--duration: expected a duration such as 30s"),
        (["retail-day", "--stages", "2m"], "--stages: '2m' is not DURATION:RATE[:linear]"),
        (["retail-day", "--processes", "0"], "--processes must be between 1 and 256"),
        (["retail-day", "--rate", "5", "--stages", "1m:5"], "not allowed with argument"),
        (
            ["retail-day", "--set", "time.mode=accelerated"],
            "raise time.acceleration to at least",
        ),
    ],
)
def test_produce_refuses_bad_input_before_anything_starts(args: list[str], expected: str):
    """One line, exit 2, and no Kafka needed: nothing is contacted before the input is sound."""
    done = invoke("produce", *args, env={"BANKSTREAM_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert expected in lines[0]
