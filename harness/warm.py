"""Warming a cold local MongoDB-wire server before a measured run.

The local stack's MongoDB stand-in (mongo-java-server) runs on the JVM: just after it starts, its
write paths are interpreted until the JIT compiles them, and for about 25 seconds a run with
projections sees end-to-end latencies of 3-4 s that vanish afterwards (measured: retail-day at
400/s after `stack up`, p50 3 s for the first 25 s, 60 ms after). That is the stand-in's start-up,
not the pipeline: before the first run against a fresh server, the sink's own writer writes a
scenario's events into a scratch database (dropped after) until the JIT has caught up. A marker
in the server (keyed by its process id, so a restart forgets it) says it is warm. Real MongoDB
(docker compose, a cluster) is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from scenarios import LoadedScenario

MARKER_DB = "bankstream_local"
EVENTS = 40_000
BATCH = 500


def needs_warming(client: Any) -> tuple[bool, Any]:
    """(is this a cold mongo-java-server, its pid)."""
    try:
        status = client.admin.command("serverStatus")
    except Exception:
        return False, None
    if status.get("process") != "java":  # real MongoDB: mongod / mongos
        return False, None
    pid = status.get("pid")
    marker = client[MARKER_DB].warm.find_one({"_id": pid})
    return marker is None, pid


def warm(client: Any, loaded: LoadedScenario, say: Callable[[str], None]) -> float | None:
    """Warm the server when it is a cold stand-in; returns the seconds it took (None: not
    needed)."""
    cold, pid = needs_warming(client)
    if not cold:
        return None
    import orjson

    from harness.ceiling import payloads
    from sink.decode import Good
    from sink.writer import Writer

    say("warming the local MongoDB-wire server (cold JVM) with the sink's writer ...")
    began = time.monotonic()
    _, values = payloads(loaded, EVENTS)
    database = f"bankstream_warm_{pid}"
    try:
        writer = Writer(client[database])
        writer.ensure_indexes()
        for start in range(0, len(values), BATCH):
            # the engine's own events: nothing to decode or check, only the writes to warm
            good = [Good(orjson.loads(v), 0, 0, 0) for v in values[start : start + BATCH]]
            writer.write(good, [("warm", 0)])
    finally:
        client.drop_database(database)
    client[MARKER_DB].warm.replace_one({"_id": pid}, {"_id": pid, "at": time.time()}, upsert=True)
    return time.monotonic() - began
