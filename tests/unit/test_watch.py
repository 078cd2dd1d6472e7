"""The pieces of `bankstream watch` and of a run's other pipelines that need no server: where a
pipeline keeps the event and its id, how a count behind becomes an age, the field-by-field
check of a sample, and the connector's configuration."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bankstream.errors import UsageError
from bankstream.settings import Settings
from harness.compare import pipeline
from harness.pipeline import connector_config
from harness.watch import Offsets, Target, compare_sample, id_mode, lookup


def test_a_target_is_a_database_and_a_collection() -> None:
    target = Target.parse("bank.tx", "tx_id", "event")
    assert (target.database, target.collection, target.text) == ("bank", "tx", "bank.tx")
    assert target.path("run_id") == "event.run_id"
    assert target.event_of({"event": {"a": 1}}) == {"a": 1}
    assert target.event_of({"other": 1}) is None
    for text in ("bank", ".tx", "bank.", ""):
        with pytest.raises(UsageError, match="^--target must be DATABASE.COLLECTION"):
            Target.parse(text)
    with pytest.raises(UsageError, match="^--event-field must be"):
        Target.parse("a.b", "tx_id", "a..b")


@pytest.mark.parametrize(
    ("document", "event_field", "mode"),
    [
        ({"_id": "t-1", "tx_id": "t-1"}, None, "id"),  # bankstream's sink, a plain upsert
        ({"_id": {"tx_id": "t-1"}, "tx_id": "t-1"}, None, "id-doc"),  # the connector's
        ({"_id": "oid", "tx_id": "t-1"}, None, "field"),
        ({"_id": "oid", "event": {"tx_id": "t-1"}}, "event", "field"),
        ({"_id": "t-1", "event": {"tx_id": "t-1"}}, "event", "id"),
        ({"_id": "oid", "x": 1}, "event", "field"),
    ],
)
def test_the_way_a_pipeline_keys_its_documents_is_seen_on_one(
    document: dict[str, Any], event_field: str | None, mode: str
) -> None:
    target = Target("d", "c", "tx_id", event_field)
    assert id_mode(document, target) == mode


def test_lookups_use_the_id_index_where_they_can() -> None:
    target = Target("d", "c", "tx_id", "event")
    assert lookup(["a"], "id", target) == {"_id": {"$in": ["a"]}}
    assert lookup(["a"], "id-doc", target) == {"_id": {"$in": [{"tx_id": "a"}]}}
    assert lookup(["a"], "field", target) == {"event.tx_id": {"$in": ["a"]}}


def test_a_count_behind_becomes_the_age_of_its_oldest_message() -> None:
    offsets = Offsets()
    assert offsets.age(0, 10.0) == 0.0  # nothing known: nothing behind
    for when, total in ((0.0, 0), (1.0, 100), (2.0, 300), (3.0, 300)):
        offsets.add(when, total)
    assert offsets.age(300, 3.5) == 0.0  # all done
    # message 200 (0-based) arrived between t=1 (100 in) and t=2 (300 in): at t=1.5
    assert offsets.age(199, 3.5) == pytest.approx(2.0)
    assert offsets.age(0, 3.5) == pytest.approx(3.5 - 0.01)


class FakeCollection:
    """find() of documents by a field's $in, as the sample check asks."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.documents = documents

    def find(self, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        ((path, condition),) = query.items()
        wanted = set(condition["$in"])
        for document in self.documents:
            found: Any = document
            for part in path.split("."):
                found = found.get(part) if isinstance(found, dict) else None
            if found in wanted:
                yield document


def test_a_sample_is_checked_field_by_field() -> None:
    events = [
        {"tx_id": "a", "amount": 100, "fraud": False, "meta": {"k": 1}, "duplicate": False},
        {"tx_id": "b", "amount": 200, "fraud": False, "meta": {"k": 1}, "duplicate": False},
        {"tx_id": "c", "amount": 300, "fraud": False, "meta": {"k": 1}, "duplicate": False},
        {"tx_id": "lost", "amount": 1, "fraud": False, "meta": {}, "duplicate": False},
    ]
    stored = [
        # numbers by value, more fields allowed, a replayed copy's delivery mark ignored
        {
            "_id": 1,
            "tx_id": "a",
            "amount": 100.0,
            "fraud": False,
            "meta": {"k": 1},
            "extra": 1,
            "duplicate": True,
        },
        {"_id": 2, "tx_id": "b", "amount": 201, "fraud": False, "meta": {"k": 1}},
        {"_id": 3, "tx_id": "c", "amount": 300, "fraud": 0, "meta": {"k": 1}},
    ]
    checked, differing, examples = compare_sample(FakeCollection(stored), Target("d", "c"), events)
    assert (checked, differing) == (3, 2)  # the lost one is the verification's to count
    assert examples[0] == "b: amount stored 201, sent 200"
    assert examples[1].startswith("c: fraud stored 0")


def test_the_connector_is_idempotent_and_takes_the_scenarios_options() -> None:
    settings = Settings(mongo_uri="mongodb://u:secret@127.0.0.1:27017")
    config = connector_config(
        settings,
        "topic.1",
        Target("bank", "tx"),
        {"tasks.max": 3, "bulk.write.ordered": True, "topics": "other", "collection": "x"},
    )
    assert config["tasks.max"] == "3" and config["bulk.write.ordered"] == "true"
    # where the events come from and go to are the run's, whatever the options say
    assert (config["topics"], config["database"], config["collection"]) == (
        "topic.1",
        "bank",
        "tx",
    )
    assert config["document.id.strategy.partial.value.projection.list"] == "tx_id"
    assert config["writemodel.strategy"].endswith("ReplaceOneDefaultStrategy")
    assert config["connection.uri"] == settings.connect_mongo_uri == settings.mongo_uri
    assert "secret" not in settings.scrub(str(config))


def test_compare_names_each_runs_pipeline() -> None:
    assert pipeline({"run_id": "old"}) == "bankstream"
    assert pipeline({"sink": "connect", "figures": {"pipeline": {"target": "a.b"}}}) == (
        "connect (a.b)"
    )


class IdCollection:
    """find() by ``_id: {$in}``, as the probes ask when ``_id`` is the event's id."""

    def __init__(self, ids: set[str]) -> None:
        self.ids = ids

    def find(self, query: Mapping[str, Any], projection: Any = None) -> list[dict[str, Any]]:
        return [{"_id": i} for i in query["_id"]["$in"] if i in self.ids]


def test_probes_that_never_come_neither_starve_new_ones_nor_stay_for_ever() -> None:
    import time

    from harness.watch import GIVE_UP, Probe, Watcher

    watcher = Watcher(Settings(), "t", Target("d", "c"))
    watcher.mode = "id"
    now = time.time()
    for i in range(600):  # the first 550 lost by the pipeline, the newest 50 stored
        watcher.pending[f"e{i}"] = Probe(f"e{i}", now - (GIVE_UP + 10 if i < 100 else 1))
    watcher._resolve(IdCollection({f"e{i}" for i in range(550, 600)}))
    assert watcher.counts["found"] == 50 and len(watcher.pending) == 550
    watcher._expire(now)
    assert watcher.counts["given_up"] == 100 and len(watcher.pending) == 450


def test_no_secret_of_the_connector_reaches_the_result() -> None:
    from harness.pipeline import Pipeline

    settings = Settings(mongo_uri="mongodb://u:secret@127.0.0.1:27017")
    config = connector_config(
        settings,
        "t",
        Target("d", "c"),
        {"consumer.override.sasl.jaas.config": "x required password='p'", "tasks.max": 2},
    )
    pipeline = Pipeline("connect", settings, print, target=Target("d", "c"), connector="n")
    pipeline.config = config
    shown = pipeline.figures(None)["connector"]["config"]
    assert shown["tasks.max"] == "2"
    assert "connection.uri" not in shown and "consumer.override.sasl.jaas.config" not in shown
    assert "secret" not in str(shown) and "password" not in str(shown)
