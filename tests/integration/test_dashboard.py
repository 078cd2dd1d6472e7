"""The dashboard against real services: each page (Streamlit's AppTest) on a store the sink's own
Writer seeded, the numbers checked against the events; the pipeline page and every Grafana
panel's PromQL against the real local Prometheus after a short real `bankstream run`; both pages
in headless Chromium (screenshots in .bankstream/screenshots/)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo.database import Database
from streamlit.testing.v1 import AppTest

from bankstream import mongo
from bankstream.events import account_kind
from bankstream.mongo import Document
from bankstream.settings import Settings
from benchmarks.dashboard_store import events as make_events
from benchmarks.dashboard_store import seed
from dashboard import common, pipeline_data
from dashboard.promql import PANELS, resolve
from scenarios import load
from tests.conftest import ROOT, free_port, run_cli

pytestmark = pytest.mark.integration
VIEWS = ROOT / "dashboard" / "views"
SCREENSHOTS = ROOT / ".bankstream" / "screenshots"
RETAIL, FRAUD = "dash-retail", "dash-fraud"


@pytest.fixture(scope="module")
def seeded(stack: Settings) -> Iterator[tuple[Database[Document], dict[str, list[dict[str, Any]]]]]:
    """Two runs written through the sink's Writer: retail-day and fraud-ring."""
    name = f"test_dash_{uuid.uuid4().hex[:8]}"
    with mongo.client(stack) as client:
        db = client[name]
        stored: dict[str, list[dict[str, Any]]] = {}
        for scenario, run, count in (("retail-day", RETAIL, 6000), ("fraud-ring", FRAUD, 3000)):
            loaded = load(scenario)
            assert seed(db, loaded, count, run) == count
            stored[run] = [orjson.loads(v) for v in make_events(loaded, count, run)]
        yield db, stored
        client.drop_database(name)


def app(page: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """A fresh page: the settings come from ``env``; no cached client or query survives."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    common.forget()
    at = AppTest.from_file(str(VIEWS / f"{page}.py"), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def frame(at: AppTest, *having: str, without: tuple[str, ...] = ()) -> Any:
    """The first dataframe shown with every column of ``having`` and none of ``without``."""
    for d in at.dataframe:
        columns = set(d.value.columns)
        if columns.issuperset(having) and not columns.intersection(without):
            return d.value
    msg = f"no table with {having} and without {without}"
    raise AssertionError(msg)


def test_analytics_shows_what_the_store_holds(seeded, monkeypatch):
    db, stored = seeded
    at = app("analytics", {"BANKSTREAM_MONGO_DATABASE": db.name}, monkeypatch)
    at.selectbox[0].set_value(RETAIL).run()
    assert not at.exception and not at.error
    events = stored[RETAIL]
    approved = [e for e in events if e["status"] == "approved"]
    shown = metrics(at)
    assert shown["Events stored"] == f"{len(events):,}"
    cents = sum(e["amount"] for e in approved)
    assert shown["Money moved (approved, R$)"] == f"{cents // 100:,}.{cents % 100:02d}"
    assert shown["Declined"] == f"{len(events) - len(approved):,}"
    assert shown["Fraud events"] == f"{sum(e['fraud'] for e in events):,}"

    # the latest transactions, read by _id, are the 50 latest by event time
    latest = frame(at, "tx_id")
    expected = sorted(events, key=lambda e: e["event_time"], reverse=True)[:50]
    assert [t.value // 1_000_000 for t in latest["event_time"]] == [
        e["event_time"] for e in expected
    ]
    # totals by type and status
    totals = frame(at, "status", without=("tx_id",))
    counted = Counter((e["type"], e["status"]) for e in events)
    assert {(r.type, r.status): r.count for r in totals.itertuples()} == counted
    # the top customer by approved money out
    debits: Counter[str] = Counter()
    for e in approved:
        if e["direction"] == "debit":
            debits[e["customer"]] += e["amount"]
    top = frame(at, "debits (R$)")
    assert list(top["debits (R$)"][:5]) == [v / 100 for _, v in debits.most_common(5)]
    assert math.isclose(top["debits (R$)"].iloc[0] * 100, debits.most_common(1)[0][1])
    assert len(at.get("vega_lite_chart")) >= 6  # type, volume, balances, declines, ...
    # the balance distribution: the checking accounts of both runs, not their card accounts
    checking = {
        e["account"]
        for run in stored.values()
        for e in run
        if account_kind(e["account"]) == "checking"
    }
    cards = {e["account"] for run in stored.values() for e in run} - checking
    assert cards, "no card account in the seeded runs"
    caption = next(c.value for c in at.caption if "checking accounts" in c.value)
    assert f"store's {len(checking):,} checking accounts" in caption, caption


def test_filters_run_type_and_range_change_what_is_shown(seeded, monkeypatch):
    db, stored = seeded
    at = app("analytics", {"BANKSTREAM_MONGO_DATABASE": db.name}, monkeypatch)
    at.selectbox[0].set_value(FRAUD).run()
    events = stored[FRAUD]
    assert metrics(at)["Events stored"] == f"{len(events):,}"
    fraud = frame(at, "typology", "declined")
    by_typology = Counter(e["typology"] for e in events if e["fraud"])
    shown = {r.typology: r.count for r in fraud.itertuples() if r.typology in by_typology}
    assert shown == dict(by_typology) and by_typology

    at.multiselect[0].set_value(["card_purchase"]).run()
    assert not at.exception
    latest = frame(at, "tx_id")
    assert set(latest["type"]) == {"card_purchase"}
    totals = frame(at, "status", without=("tx_id",))
    assert set(totals["type"]) == {"card_purchase"}
    assert totals["count"].sum() == sum(e["type"] == "card_purchase" for e in events)
    csv = at.get("download_button")
    assert csv, "no CSV export of the filtered view"

    at.selectbox[1].set_value("last hour").run()
    assert not at.exception
    last = max(e["event_time"] for e in events)
    hour_end = last - last % 3_600_000 + 3_600_000
    in_range = [
        e
        for e in events
        if e["type"] == "card_purchase" and e["event_time"] >= hour_end - 3_600_000
    ]
    assert frame(at, "status", without=("tx_id",))["count"].sum() == len(in_range)


def test_an_account_drill_down_shows_its_transactions(seeded, monkeypatch):
    db, stored = seeded
    at = app("analytics", {"BANKSTREAM_MONGO_DATABASE": db.name}, monkeypatch)
    at.selectbox[0].set_value(RETAIL).run()
    busiest, count = Counter(e["account"] for e in stored[RETAIL]).most_common(1)[0]
    at.text_input(key="account").input(busiest).run()
    assert not at.exception and not at.error
    history = at.dataframe[-1].value
    assert len(history) == count
    mine = sorted((e for e in stored[RETAIL] if e["account"] == busiest), key=lambda e: e["seq"])
    assert list(history["seq"]) == [e["seq"] for e in reversed(mine)]
    balance = mine[-1]["balance_after"]
    sign = "-" if balance < 0 else ""
    assert metrics(at)["Balance"] == f"{sign}R$ {abs(balance) // 100:,}.{abs(balance) % 100:02d}"
    at.text_input(key="account").input("no-such-account").run()
    assert not at.exception and any("no-such-account" in w.value for w in at.warning)


def test_the_app_never_writes(seeded, monkeypatch):
    db, _ = seeded

    def state() -> dict[str, Any]:
        return {
            name: sorted(orjson.dumps(d, default=str) for d in db[name].find({}))
            for name in ("rollups", "accounts")
        } | {"transactions": db.transactions.count_documents({})}

    before = state()
    at = app("analytics", {"BANKSTREAM_MONGO_DATABASE": db.name}, monkeypatch)
    at.selectbox[0].set_value(RETAIL).run()
    at.text_input(key="account").input("A000000001-0").run()
    app("pipeline", {"BANKSTREAM_MONGO_DATABASE": db.name}, monkeypatch)
    assert state() == before


def test_an_empty_store_and_an_unreachable_one_are_said_in_one_line(stack, monkeypatch):
    at = app(
        "analytics", {"BANKSTREAM_MONGO_DATABASE": f"empty_{uuid.uuid4().hex[:6]}"}, monkeypatch
    )
    assert any("No run in the store yet" in i.value for i in at.info)
    dead = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=1500"
    at = app(
        "analytics", {"BANKSTREAM_MONGO_URI": dead, "BANKSTREAM_CONNECT_TIMEOUT": "2"}, monkeypatch
    )
    assert len(at.error) == 1 and "does not answer" in at.error[0].value


# ---------------------------------------------------------------------- after a real run


@pytest.fixture(scope="module")
def short_run(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A short real run whose metrics the local Prometheus scrapes (the settings' ports)."""
    name = f"test_dash_run_{uuid.uuid4().hex[:8]}"
    results = tmp_path_factory.mktemp("results")
    began = time.time()
    done = run_cli(
        "run", "retail-day", "--rate", "300", "--duration", "12s", "--processes", "1",
        "--fresh", "--json", "--results", str(results),
        env={"BANKSTREAM_MONGO_DATABASE": name},
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    result = json.loads(Path(ROOT, summary["result"]).read_text())
    time.sleep(4)  # two more scrapes
    yield {"db": name, "results": results, "result": result, "began": began, "ended": time.time()}
    with mongo.client(stack) as client:
        client.drop_database(name)


def test_every_grafana_panel_returns_data_after_a_short_run(stack, short_run):
    checked = 0
    for panel in PANELS:
        for query in panel.queries:
            series = pipeline_data.query_range(
                stack.prometheus_url,
                resolve(query.expr, "10s"),
                short_run["began"],
                short_run["ended"],
                2.0,
            )
            values = [v for _, points in series for _, v in points if math.isfinite(v)]
            assert values, f"{panel.title}: {query.expr} returned no data"
            checked += 1
    assert checked >= 20


def test_pipeline_page_from_prometheus_and_past_runs(stack, short_run, monkeypatch, tmp_path):
    # a second result (a copy of the real one under another id) and a capacity search made of
    # the two, so the comparison and the curve render
    results = tmp_path / "results"
    shutil.copytree(short_run["results"], results)
    first = short_run["result"]
    twin = json.loads(json.dumps(first))
    twin["run_id"] = first["run_id"] + "-copy"
    (results / twin["run_id"]).mkdir()
    (results / twin["run_id"] / "result.json").write_text(json.dumps(twin))
    f = first["figures"]
    step = {
        "achieved": f["produce"]["rate"],
        "sink_rate": f["sink"]["rate"],
        "e2e_p50": f["latency"]["end_to_end"]["p50"],
        "e2e_p99": f["latency"]["end_to_end"]["p99"],
        "passed": True,
    }
    capacity = {"run_id": "cap", "scenario": "retail-day", "found_rate": 300.0}
    capacity["steps"] = [{**step, "rate": 150.0}, {**step, "rate": 300.0}]
    (results / "cap").mkdir()
    (results / "cap" / "capacity.json").write_text(json.dumps(capacity))

    env = {
        "BANKSTREAM_MONGO_DATABASE": short_run["db"],
        "BANKSTREAM_DASHBOARD_RESULTS": str(results),
    }
    at = app("pipeline", env, monkeypatch)
    assert not at.error
    assert not [c for c in at.caption if "no data in this window" in c.value]
    charts = at.get("vega_lite_chart")
    assert len(charts) >= len(PANELS) + 4 + 2  # panels, the run's timeline, the capacity curve
    runs = frame(at, "produced/s")
    assert first["run_id"] in set(runs["run"])
    compared = frame(at, "figure")
    assert list(compared.columns[1:]) == [first["run_id"], twin["run_id"]]

    # Prometheus away: the run records in MongoDB, with what the sink stored
    env["BANKSTREAM_PROMETHEUS_URL"] = f"http://127.0.0.1:{free_port()}"
    at = app("pipeline", env, monkeypatch)
    assert any("Prometheus does not answer" in i.value for i in at.info)
    records = frame(at, "stored")
    row = records[records["run"] == first["run_id"]].iloc[0]
    assert row["acked"] == row["stored"] == first["figures"]["produce"]["acked"]


def test_both_pages_render_in_headless_chromium(stack, short_run, tmp_path):
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromium-driver are missing: run `make setup`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    port = free_port()
    env = {**os.environ, "BANKSTREAM_MONGO_DATABASE": short_run["db"]}
    log = (tmp_path / "dashboard.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "bankstream", "dashboard", "--results", str(short_run["results"]),
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    import urllib.request

    deadline = time.monotonic() + 60
    while True:  # Streamlit answers its health check once it serves the app
        assert server.poll() is None, (tmp_path / "dashboard.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                break
        except OSError:
            assert time.monotonic() < deadline, "the dashboard did not start in 60 s"
            time.sleep(0.5)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,3000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        for path, page, least in (("", "analytics", 6), ("pipeline", "pipeline", len(PANELS))):
            deadline = time.monotonic() + 90
            browser.get(f"http://127.0.0.1:{port}/{path}")
            charts: list[Any] = []
            while time.monotonic() < deadline:
                assert server.poll() is None, (tmp_path / "dashboard.log").read_text()[-2000:]
                charts = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart']")
                running = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']")
                if len(charts) >= least and not running:
                    break
                time.sleep(1)
            time.sleep(2)  # let the charts draw
            shot = SCREENSHOTS / f"{page}.png"
            browser.save_screenshot(str(shot))
            errors = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
            alerts = [
                a.text
                for a in browser.find_elements(
                    By.CSS_SELECTOR, "[data-testid='stAlertContentError']"
                )
            ]
            assert not errors and not alerts, (page, [e.text for e in errors], alerts)
            assert len(charts) >= least, f"{page}: {len(charts)} charts drawn, {least} expected"
            drawn = browser.find_elements(
                By.CSS_SELECTOR,
                "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg",
            )
            assert drawn, f"{page}: charts have no canvas"
            assert shot.stat().st_size > 20_000
        # Ctrl-C with a browser still on the page: the dashboard ends, nothing holds the port
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)
        from bankstream.stack.process import port_answers

        assert not port_answers("127.0.0.1", port)
    finally:
        browser.quit()
        if server.poll() is None:
            server.kill()
        server.wait(timeout=20)
        log.close()


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    common.forget()


def test_the_indexed_reads_equal_the_local_servers(seeded):
    """MongoDB sorts the top customers from its index; the local server's path reads the totals:
    both give the same customers (checked here on the local server, which can do both)."""
    from dashboard.store import Store

    db, _ = seeded
    for run in (RETAIL, FRAUD):
        fast = Store(db, indexed=True).top_customers(run, 20)
        local = Store(db, indexed=False).top_customers(run, 20)
        assert list(fast["debits"]) == list(local["debits"]) and len(fast) == 20
    assert Store(db).indexed is False  # the local server says it is a JVM
