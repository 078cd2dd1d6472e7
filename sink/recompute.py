"""What the projections should hold, recomputed from ``transactions``: for the verifier and the
tests, which compare it with what the sink's incremental updates left in the store."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from sink.projections import project
from sink.writer import DONE, PENDING, done_tokens

Document = dict[str, Any]


def _dotted(doc: Document, name: str) -> Any:
    """``doc``'s value at the dotted path ``name`` (0 when absent, as an $inc starts)."""
    value: Any = doc
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return 0
        value = value[part]
    return value


def differences(
    db: Database[Document],
    transactions: str = "transactions",
    accounts: str = "accounts",
    rollups: str = "rollups",
    limit: int = 20,
    documents: list[Document] | None = None,
) -> list[str]:
    """Where ``accounts`` and ``rollups`` differ from a projection of every stored transaction
    (empty when they are exact). Reads everything: for verification, not for the hot path.
    ``documents``: every document of ``transactions``, when the caller has read them already."""
    found = documents if documents is not None else db[transactions].find({})
    tokens: list[Any] = []
    events = []
    for d in found:
        if PENDING in d:
            tokens.append(d[PENDING])
        events.append({k: v for k, v in d.items() if k not in ("_id", PENDING)})
    events.sort(key=lambda e: str(e["tx_id"]))
    # stored but not projected: their batch's token is not done (docs/sink.md)
    done = done_tokens(db[DONE], tokens)
    pending = sum(1 for t in tokens if t not in done)
    expected = project(events)
    out: list[str] = []
    if pending:
        out.append(f"{pending} transactions still pending (not projected)")
    stored = {d["_id"]: d for d in db[rollups].find({})}
    for key, change in expected.rollups.items():
        doc = stored.pop(key, None)
        if doc is None:
            out.append(f"rollup {key} missing")
            continue
        for name, value in [*change.inc.items(), *change.low.items(), *change.high.items()]:
            stored_value = _dotted(doc, name)
            if stored_value != value:
                out.append(f"rollup {key}: {name} {stored_value}, expected {value}")
    out += [f"rollup {key} is not in any transaction" for key in stored]
    have = {d["_id"]: d for d in db[accounts].find({})}
    for account, state in expected.accounts.items():
        doc = have.pop(account, None)
        if doc is None:
            out.append(f"account {account} missing")
            continue
        for name in ("balance", "last_seq", "last_tx"):
            if doc.get(name) != state[name]:
                out.append(f"account {account}: {name} {doc.get(name)}, expected {state[name]}")
    out += [f"account {account} has no transaction" for account in have]
    return out[:limit]
