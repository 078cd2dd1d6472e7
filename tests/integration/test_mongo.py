"""The MongoDB features bankstream relies on, against the real server of the stack."""

from __future__ import annotations

import pytest
from pymongo import ASCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from bankstream.mongo import Document

pytestmark = pytest.mark.integration


def test_unordered_insert_with_duplicates_reports_11000(mongo_db: Database[Document]):
    docs = [{"_id": f"tx-{i}", "cents": i} for i in range(100)]
    mongo_db.tx.insert_many(docs[:10])
    with pytest.raises(BulkWriteError) as err:
        mongo_db.tx.insert_many(docs, ordered=False)
    codes = [e["code"] for e in err.value.details["writeErrors"]]
    assert codes == [11000] * 10
    # the rest of the batch went in despite the duplicates; nothing is there twice
    assert mongo_db.tx.count_documents({}) == 100
    assert sorted(d["_id"] for d in mongo_db.tx.find({}, {"_id": 1})) == sorted(
        d["_id"] for d in docs
    )


def test_range_query_on_an_index(mongo_db: Database[Document]):
    mongo_db.tx.create_index([("event_time", ASCENDING)])
    mongo_db.tx.insert_many([{"_id": i, "event_time": i * 10} for i in range(200)])
    found = list(
        mongo_db.tx.find({"event_time": {"$gte": 500, "$lt": 600}}).sort("event_time", ASCENDING)
    )
    assert [d["_id"] for d in found] == list(range(50, 60))
    assert "event_time_1" in mongo_db.tx.index_information()


def test_aggregate_match_group_sum_avg_max(mongo_db: Database[Document]):
    rows = [
        {"type": t, "status": s, "cents": c}
        for t, s, c in [
            ("pix", "approved", 1000),
            ("pix", "approved", 3000),
            ("pix", "declined", 9999),
            ("boleto", "approved", 25000),
            ("boleto", "approved", 5000),
            ("ted", "declined", 1),
        ]
    ]
    mongo_db.tx.insert_many(rows)
    result = {
        d["_id"]: d
        for d in mongo_db.tx.aggregate(
            [
                {"$match": {"status": "approved"}},
                {
                    "$group": {
                        "_id": "$type",
                        "n": {"$sum": 1},
                        "total": {"$sum": "$cents"},
                        "avg": {"$avg": "$cents"},
                        "max": {"$max": "$cents"},
                    }
                },
            ]
        )
    }
    assert set(result) == {"pix", "boleto"}
    assert (result["pix"]["n"], result["pix"]["total"], result["pix"]["max"]) == (2, 4000, 3000)
    assert result["pix"]["avg"] == 2000
    assert (result["boleto"]["n"], result["boleto"]["total"]) == (2, 30000)
    assert result["boleto"]["avg"] == 15000


def test_upsert_with_inc_max_set_on_insert(mongo_db: Database[Document]):
    def bump(account: str, cents: int, seq: int) -> UpdateOne:
        return UpdateOne(
            {"_id": account},
            {
                "$inc": {"balance": cents, "events": 1},
                "$max": {"last_seq": seq},
                "$setOnInsert": {"opened_by": "test"},
            },
            upsert=True,
        )

    first = mongo_db.accounts.update_one(
        {"_id": "a"},
        {
            "$inc": {"balance": 500, "events": 1},
            "$max": {"last_seq": 1},
            "$setOnInsert": {"opened_by": "test"},
        },
        upsert=True,
    )
    assert first.upserted_id == "a"
    # repeated keys in one unordered batch, out of order sequence numbers
    mongo_db.accounts.bulk_write(
        [bump("a", -200, 3), bump("b", 700, 1), bump("a", 50, 2), bump("b", -100, 2)],
        ordered=False,
    )
    a = mongo_db.accounts.find_one({"_id": "a"})
    b = mongo_db.accounts.find_one({"_id": "b"})
    assert a == {"_id": "a", "balance": 350, "events": 3, "last_seq": 3, "opened_by": "test"}
    assert b == {"_id": "b", "balance": 600, "events": 2, "last_seq": 2, "opened_by": "test"}
