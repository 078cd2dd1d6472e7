"""What the store holds of a run, held to the run's manifest.

One pass over the run's transactions (bounded memory: a few numbers per event in numpy arrays,
one small record per account) gives:

- ``lost``: events the manifest says were acknowledged by Kafka but that are not in the store;
  ``duplicates``: stored documents beyond one per transaction id (a copy under another ``_id``);
- counts by type and status, fraud by typology, money in and out, each against the manifest;
- the ledger on the stored data: every account's events numbered 1, 2, 3 ... without gaps, each
  balance_before equal to the previous balance_after, each approved amount moving the balance and
  each declined one leaving it; the final (account, balance, seq) of every cell against the
  manifest's per-cell checksum;
- up to ``limit`` events, the full stream check (refunds within their purchases, both legs of
  every internal transfer, fraud labels) and the projections against a recomputation from
  ``transactions`` (when the collections hold this run only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bankstream.events import balance_checksum
from bankstream.invariants import check_stream, made_order
from harness.watch import Target, get_path
from loadgen.producer.manifest import Manifest

Document = dict[str, Any]
DEFAULT_LIMIT = 1_000_000  # events: the full stream check and projections up to this many


@dataclass
class Verification:
    """Every figure of the check; ``problems`` says in words what is wrong (empty: exact)."""

    expected: int  # distinct events the manifest says Kafka acknowledged
    stored: int  # documents of the run in the store
    distinct: int  # distinct transaction ids among them
    lost: int
    duplicates: int
    unexpected: int  # distinct stored events beyond the expected ones
    counts_match: bool
    money_match: bool
    ledger_problems: int
    checksum_mismatches: int  # cells whose final balances differ from the manifest's checksum
    stream_checked: bool
    projections: str  # "exact", "N differences", or why they were not checked
    problems: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "expected": self.expected,
            "stored": self.stored,
            "distinct": self.distinct,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "unexpected": self.unexpected,
            "counts_match": self.counts_match,
            "money_match": self.money_match,
            "ledger_problems": self.ledger_problems,
            "checksum_mismatches": self.checksum_mismatches,
            "stream_checked": self.stream_checked,
            "projections": self.projections,
            "problems": self.problems,
        }


def expected_events(manifest: Manifest) -> int:
    """Distinct events acknowledged: every event made, less those that failed or were never
    sent (exact when none did; a failed injected copy makes it an upper bound)."""
    made = sum(sum(c.values()) for c in manifest["by_type"].values())
    events = manifest["events"]
    return max(0, int(made) - int(events["failed"]) - int(events["unsent"]))


def cell_of(tx_id: str) -> str:
    """The cell number of a transaction id ``{run tag}-{cell, hex}-{counter}``."""
    parts = tx_id.rsplit("-", 2)
    try:
        return str(int(parts[1], 16)) if len(parts) == 3 else "?"
    except ValueError:
        return "?"


def verify(
    db: Any,
    manifest: Manifest,
    collections: Mapping[str, str],
    limit: int = DEFAULT_LIMIT,
    shown: int = 10,
    accounts: Mapping[str, tuple[int, int]] | None = None,
    target: Target | None = None,
) -> Verification:
    """Check the store's copy of the run ``manifest["run_id"]``. ``accounts``: each account's
    (floor, opening balance) as the engine built them (see :func:`account_limits`), to check
    that no approved debit went below the floor and that every account starts where it
    opened. ``target``: the documents are another pipeline's (the event where it says, its id
    in its id field); the projections are bankstream's sink's own, not checked then."""
    run_id = manifest["run_id"]
    transactions = db[collections["transactions"]]
    unreadable = 0
    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < shown:
            problems.append(text)

    hashes: list[int] = []
    account_index: dict[str, int] = {}
    account_cell: list[str] = []
    columns: dict[str, list[int]] = {
        k: [] for k in ("account", "seq", "before", "after", "delta", "debit")
    }
    counts: Counter[tuple[str, str]] = Counter()
    fraud: Counter[str] = Counter()
    money_in = money_out = 0
    kept: list[Document] | None = []
    query = {"run_id": run_id} if target is None else {target.path("run_id"): run_id}
    cursor = transactions.find(query, batch_size=10_000)
    stored = 0
    for raw in cursor:
        doc = raw if target is None else target.event_of(raw)
        if doc is None or (target is not None and not _readable(doc)):
            unreadable += 1
            continue
        stored += 1
        tx = str(
            doc.get("tx_id", doc.get("_id")) if target is None else get_path(doc, target.id_field)
        )
        hashes.append(hash(tx))
        account = doc["account"]
        index = account_index.get(account)
        if index is None:
            index = account_index[account] = len(account_cell)
            account_cell.append(cell_of(tx))
        approved = doc["status"] == "approved"
        amount = int(doc["amount"])
        signed = (amount if doc["direction"] == "credit" else -amount) if approved else 0
        columns["account"].append(index)
        columns["seq"].append(int(doc["seq"]))
        columns["before"].append(int(doc["balance_before"]))
        columns["after"].append(int(doc["balance_after"]))
        columns["delta"].append(signed)
        columns["debit"].append(int(approved and doc["direction"] == "debit"))
        counts[(doc["type"], doc["status"])] += 1
        if doc["fraud"]:
            fraud[str(doc["typology"])] += 1
        if approved and doc["counterparty_kind"] != "account":
            if doc["direction"] == "credit":
                money_in += amount
            else:
                money_out += amount
        if kept is not None:
            if stored > limit:
                kept = None
            else:
                kept.append(doc if isinstance(doc, dict) else dict(doc))
    distinct = len(np.unique(np.array(hashes, dtype=np.int64))) if hashes else 0
    duplicates = stored - distinct
    expected = expected_events(manifest)
    lost = max(0, expected - distinct)
    unexpected = max(0, distinct - expected)
    if unreadable:
        problem(f"{unreadable} stored documents of the run are not events (fields missing)")
    if lost:
        problem(f"{lost} acknowledged events are not in the store")
    if duplicates:
        problem(f"{duplicates} events are stored more than once")
    if unexpected:
        problem(f"{unexpected} stored events more than the manifest acknowledged")

    # counts and money hold exactly when nothing failed (a failed event is in neither)
    complete = manifest["events"]["failed"] == 0 and manifest["events"]["unsent"] == 0
    want = Counter(
        {
            (name, status): n
            for name, by_status in manifest["by_type"].items()
            for status, n in by_status.items()
            if n
        }
    )
    have = Counter({key: n for key, n in counts.items() if n})
    counts_match = have == want  # (a stored copy counts twice: duplicates are reported above)
    if complete and not duplicates and not counts_match:
        for key in sorted(set(want) | set(have)):
            if want[key] != have[key]:
                problem(f"{key[0]} {key[1]}: {have[key]} stored, manifest {want[key]}")
    fraud_want = {k: v for k, v in manifest["fraud"]["by_typology"].items() if v}
    if complete and not duplicates and dict(fraud) != fraud_want:
        problem(f"fraud by typology {dict(fraud)}, manifest {fraud_want}")
        counts_match = False
    money = manifest["money"]
    money_match = (money_in, money_out) == (money["in"], money["out"])
    if complete and not duplicates and not money_match:
        problem(
            f"money in/out {money_in}/{money_out} cents stored, manifest "
            f"{money['in']}/{money['out']}"
        )

    names = list(account_index)
    limits = None
    if accounts is not None:
        missing = [n for n in names if n not in accounts]
        if missing:
            problem(f"{len(missing)} stored accounts the scenario does not have, e.g. {missing[0]}")
        limits = np.array([accounts.get(n, (-(2**62), 0)) for n in names], dtype=np.int64)
    ledger, finals = _ledger(columns, names, shown, limits)
    for text in ledger[1]:
        problem(text)
    by_cell: dict[str, list[tuple[str, int, int]]] = {}
    for index, (balance, seq) in finals.items():
        by_cell.setdefault(account_cell[index], []).append((names[index], balance, seq))
    mismatches = 0
    if complete:
        for cell, checksum in manifest["checksums"].items():
            if balance_checksum(by_cell.get(cell, [])) != checksum:
                mismatches += 1
                if mismatches <= 3:
                    problem(f"cell {cell}: final balances differ from the manifest's checksum")
        if mismatches > 3:
            problem(f"{mismatches} cells in all differ from their checksums")

    stream_checked = kept is not None
    if kept is not None and not duplicates:
        # the order they were made in (stored documents carry no order of their own)
        events = sorted(({**d, "duplicate": False} for d in kept), key=made_order)
        for text in check_stream(events, limit=shown):
            problem(f"stream: {text}")
    projections = (
        _projections(db, run_id, collections, kept)
        if target is None
        else "not checked: the pipeline under test is not bankstream's sink"
    )
    if projections != "exact" and not projections.startswith("not checked"):
        problem(f"projections: {projections}")
    return Verification(
        expected=expected,
        stored=stored,
        distinct=distinct,
        lost=lost,
        duplicates=duplicates,
        unexpected=unexpected,
        counts_match=counts_match,
        money_match=money_match,
        ledger_problems=ledger[0],
        checksum_mismatches=mismatches,
        stream_checked=stream_checked,
        projections=projections,
        problems=problems,
    )


EVENT_FIELDS = (
    "account",
    "status",
    "amount",
    "direction",
    "seq",
    "balance_before",
    "balance_after",
    "type",
    "fraud",
    "typology",
    "counterparty_kind",
)


def _readable(doc: Mapping[str, Any]) -> bool:
    """The fields the check reads are there (another pipeline may store less)."""
    return all(name in doc for name in EVENT_FIELDS)


def _ledger(
    columns: Mapping[str, list[int]],
    names: list[str],
    shown: int,
    limits: np.ndarray[Any, Any] | None = None,
) -> tuple[tuple[int, list[str]], dict[int, tuple[int, int]]]:
    """((problems, examples), account index -> (final balance, last seq)), vectorised.
    ``limits``: per account index, (floor, opening balance)."""
    if not columns["account"]:
        return (0, []), {}
    account = np.array(columns["account"], dtype=np.int64)
    seq = np.array(columns["seq"], dtype=np.int64)
    before = np.array(columns["before"], dtype=np.int64)
    after = np.array(columns["after"], dtype=np.int64)
    delta = np.array(columns["delta"], dtype=np.int64)
    debit = np.array(columns.get("debit") or [0] * len(delta), dtype=bool)
    order = np.lexsort((seq, account))
    account, seq, before, after, delta, debit = (
        a[order] for a in (account, seq, before, after, delta, debit)
    )
    first = np.ones(len(account), dtype=bool)
    first[1:] = account[1:] != account[:-1]
    examples: list[str] = []
    total = 0
    checks = [
        (first & (seq != 1), "first stored event has seq {seq}, not 1"),
        (~first & (seq != np.roll(seq, 1) + 1), "seq {seq} follows seq {prev}: a gap or a copy"),
        (
            ~first & (before != np.roll(after, 1)),
            "seq {seq}: balance_before differs from the previous balance_after",
        ),
        (after != before + delta, "seq {seq}: the balance does not move by the amount"),
    ]
    if limits is not None:
        floor, opening = limits[account, 0], limits[account, 1]
        checks += [
            (debit & (after < floor), "seq {seq}: an approved debit below the account's floor"),
            (first & (seq == 1) & (before != opening), "seq 1 does not start at the opening"),
        ]
    previous = np.roll(seq, 1)
    for mask, text in checks:
        bad = np.flatnonzero(mask)
        total += len(bad)
        examples += [
            f"{names[int(account[i])]}: " + text.format(seq=int(seq[i]), prev=int(previous[i]))
            for i in bad[: max(0, shown - len(examples))]
        ]
    last = np.ones(len(account), dtype=bool)
    last[:-1] = account[1:] != account[:-1]
    finals = {
        int(a): (int(b), int(s))
        for a, b, s in zip(account[last], after[last], seq[last], strict=True)
    }
    return (total, examples[:shown]), finals


def _projections(
    db: Any, run_id: str, collections: Mapping[str, str], kept: list[Document] | None
) -> str:
    from sink.recompute import differences

    if kept is None:
        return "not checked: more events than the verify limit"
    others = db[collections["transactions"]].find_one({"run_id": {"$ne": run_id}}, {"_id": 1})
    if others is not None:
        return "not checked: the collections hold other runs too (start with --fresh)"
    found = differences(
        db,
        transactions=collections["transactions"],
        accounts=collections["accounts"],
        rollups=collections["rollups"],
        documents=kept,
    )
    return "exact" if not found else f"{len(found)} differences, e.g. {found[0]}"


def account_limits(loaded: Any, cells: Iterable[int]) -> dict[str, tuple[int, int]]:
    """Each account's (floor, opening balance) in ``cells``, rebuilt by the engine from the
    scenario (the same seed gives the same population)."""
    from loadgen.model import EngineModel
    from loadgen.population import build_cell

    model = EngineModel.build(loaded.scenario, loaded.digest)
    out: dict[str, tuple[int, int]] = {}
    for cell in cells:
        state = build_cell(model, cell)
        for key, floor, opening in zip(state.key, state.floor, state.opening.tolist(), strict=True):
            out[key] = (int(floor), int(opening))
    return out
