"""How long each dashboard page takes to render, by the store's size.

    python -m benchmarks.dashboard_pages --sizes 100000,1000000 --repeat 5

For each size: a fresh database holding that many events of the scenario as the sink leaves
them (``benchmarks.dashboard_store.seed``, the bulk path), then each page run by Streamlit's
AppTest with every cache cleared before each run (a first visit: all queries, all elements
built; the browser's drawing is not in it), and the account drill-down (the one read that
scans ``transactions`` on the local server) on its own. Reports the store's counts and, for
the local MongoDB-wire server, its heap in use after a full GC (jcmd), then drops the database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

VIEWS = Path(__file__).resolve().parent.parent / "dashboard" / "views"


def heap_used_mib(pid: int | None) -> float | None:
    """The JVM's heap in use after a full GC (MiB), or None when not measurable."""
    if pid is None or not shutil.which("jcmd"):
        return None
    subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, check=False, timeout=120)
    out = subprocess.run(
        ["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        if "used" in line and "heap" in line:
            used = line.split("used", 1)[1].split()[0]
            return round(int(used.rstrip("K")) / 1024, 1)
    return None


def time_page(page: str, repeat: int, account: str | None = None) -> list[float]:
    from streamlit.testing.v1 import AppTest

    from dashboard import common

    took = []
    for _ in range(repeat):
        common.forget()
        at = AppTest.from_file(str(VIEWS / f"{page}.py"), default_timeout=600)
        began = time.perf_counter()
        at.run()
        if account is not None:
            at.text_input(key="account").input(account).run()
        took.append(time.perf_counter() - began)
        if at.exception:
            msg = f"{page}: {at.exception[0].value}"
            raise RuntimeError(msg)
    common.forget()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scenario", default="retail-day")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from bankstream import mongo
    from bankstream.settings import load_settings
    from benchmarks.dashboard_store import seed
    from scenarios import load

    settings = load_settings()
    loaded = load(args.scenario)
    rows: list[dict[str, Any]] = []
    with mongo.client(settings) as client:
        status = client.admin.command("serverStatus")
        pid = status.get("pid") if status.get("process") == "java" else None
        for size in (int(s) for s in args.sizes.split(",")):
            name = f"bench_dashboard_{size}"
            client.drop_database(name)
            began = time.monotonic()
            seed(client[name], loaded, size, f"bench-{size}", writer=False)
            seeded = time.monotonic() - began
            db = client[name]
            account = db.accounts.find_one({}, {"_id": 1}) or {"_id": "none"}
            os.environ["BANKSTREAM_MONGO_DATABASE"] = name
            row: dict[str, Any] = {
                "events": size,
                "transactions": db.transactions.estimated_document_count(),
                "rollups": db.rollups.estimated_document_count(),
                "accounts": db.accounts.estimated_document_count(),
                "seed_seconds": round(seeded, 1),
                "server_heap_used_mib": heap_used_mib(pid),
            }
            for page in ("analytics", "pipeline"):
                took = time_page(page, args.repeat)
                row[f"{page}_median_s"] = round(statistics.median(took), 3)
                row[f"{page}_max_s"] = round(max(took), 3)
            took = time_page("analytics", max(1, args.repeat // 2), account=str(account["_id"]))
            row["analytics_with_drill_down_median_s"] = round(statistics.median(took), 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
            client.drop_database(name)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        for page in ("analytics", "pipeline"):
            ratio = large[f"{page}_median_s"] / small[f"{page}_median_s"]
            print(
                f"{page}: {small[f'{page}_median_s']:.2f} s at {small['events']:,} events, "
                f"{large[f'{page}_median_s']:.2f} s at {large['events']:,} ({ratio:.2f}x)"
            )


if __name__ == "__main__":
    main()
