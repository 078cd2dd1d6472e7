"""`bankstream run` end to end against the real local stack: short real runs pass and verify
exact; an impossible threshold fails and is named; the verifier counts a deleted document as lost
and a copy as a duplicate; Ctrl-C stops the run and still reports; compare of a result with
itself flags nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from pymongo.database import Database

from bankstream import mongo
from bankstream.mongo import Document
from bankstream.settings import Settings
from harness.verify import verify
from scenarios import load
from tests.conftest import ROOT, free_port, invoke, run_cli

pytestmark = pytest.mark.integration
COLLECTIONS = {"transactions": "transactions", "accounts": "accounts", "rollups": "rollups"}


def environment(database: str) -> dict[str, str]:
    return {
        "BANKSTREAM_MONGO_DATABASE": database,
        "BANKSTREAM_LOADGEN_METRICS_PORT": str(free_port()),
        "BANKSTREAM_SINK_METRICS_PORT": str(free_port()),
    }


def result_of(done: subprocess.CompletedProcess[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the summary line, result.json) of a `run --json`."""
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result = json.loads(Path(ROOT, summary["result"]).read_text())
    return summary, result


@pytest.fixture(scope="module")
def database(stack: Settings) -> Iterator[Database[Document]]:
    name = f"test_run_{uuid.uuid4().hex[:8]}"
    with mongo.client(stack) as client:
        yield client[name]
        client.drop_database(name)


@pytest.fixture(scope="module")
def retail(
    database: Database[Document], tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    results = tmp_path_factory.mktemp("results")
    ceiling = run_cli(
        "bench", "ceiling", "retail-day", "--events", "5000", "--json", "--results", str(results),
        env=environment(database.name),
    )  # fmt: skip
    assert ceiling.returncode == 0, ceiling.stderr
    done = run_cli(
        "run", "retail-day", "--rate", "300", "--duration", "10s", "--processes", "1",
        "--fresh", "--json", "--results", str(results), "--junit", str(results / "junit.xml"),
        "--set", 'thresholds.e2e_latency_p99_seconds=["< 2s", "< 30s over 3s"]',
        env=environment(database.name),
        timeout=300,
    )  # fmt: skip
    return done, results


def test_a_short_retail_day_run_passes_every_threshold_and_verifies_exact(
    retail: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    done, _ = retail
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    summary, result = result_of(done)
    assert summary["verdict"] == "pass" and result["failed"] == []
    v = result["verification"]
    assert v["exact"] and v["lost"] == 0 and v["duplicates"] == 0
    assert v["expected"] == v["stored"] == result["manifest"]["events"]["acked"] >= 2500
    assert v["counts_match"] and v["money_match"] and v["checksum_mismatches"] == 0
    assert v["stream_checked"] and v["projections"] == "exact"
    assert {t["metric"] for t in result["thresholds"]} >= {"lost", "duplicates"}
    if not os.environ.get("BANKSTREAM_MONGO_URI"):  # the local in-memory store: its fill
        store = result["figures"]["store"]
        assert store["stored_events"] >= v["stored"] and 0 < store["fill"] < 1
        assert store["room_events"] > 100_000 and store["heap_bytes"] >= 2**28
    window = result["figures"]["scoped"]["e2e_latency_p99_seconds over 3s"]  # judged each 3 s
    assert window["windows"] >= 3 and 0 < window["min"] <= window["max"] < 30
    assert all(t["passed"] for t in result["thresholds"])
    figures = result["figures"]
    assert 0.9 < figures["produce"]["rate_ratio"] < 1.1
    assert figures["latency"]["end_to_end"]["count"] > 0
    assert figures["resources"]["sink"]["cpu_seconds"] > 0
    assert len(result["timeline"]) >= 10
    folder = Path(ROOT, summary["result"]).parent
    report = (folder / "report.md").read_text()
    assert "PASS" in report and "| lost | == 0 | 0 | pass |" in report
    for chart in ("throughput.png", "lag.png", "latency.png"):
        assert (folder / chart).read_bytes()[:4] == b"\x89PNG"
    assert result["environment"]["mongodb"] and result["environment"]["librdkafka"]
    # bench ceiling ran first: the rates are also stated as shares of the raw clients'
    ceilings = result["ceilings"]
    assert ceilings["kafka_producer_rate"] > 1000 and ceilings["mongodb_insert_rate"] > 100
    assert 0 < ceilings["produce_rate_of_ceiling"] < 1 and 0 < ceilings["sink_rate_of_ceiling"] < 1
    assert "Against the ceilings" in report
    # the timeline and the latency histograms as CSV
    timeline = (folder / "timeline.csv").read_text().splitlines()
    assert timeline[0].split(",") == result["timeline_fields"]
    assert len(timeline) == len(result["timeline"]) + 1
    latency = (folder / "latency.csv").read_text().splitlines()[1:]
    e2e = [int(line.split(",")[3]) for line in latency if line.startswith("end_to_end,")]
    assert sum(e2e) == result["histograms"]["end_to_end"]["count"] > 0
    # the same verdict as JUnit XML, valid against the shape CI systems read
    junit = retail[1] / "junit.xml"
    xmlschema.XMLSchema(ROOT / "tests" / "data" / "junit.xsd").validate(str(junit))
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    names = {case.get("name") for case in suite.iter("testcase")}
    assert {"lost", "duplicates", "ledger", "projections"} <= names
    assert len(names) >= len(result["thresholds"]) + len(names & {"lost", "duplicates"})


def test_a_deleted_document_is_one_lost_and_a_copy_one_duplicate(
    retail: tuple[subprocess.CompletedProcess[str], Path], database: Database[Document]
) -> None:
    _, result = result_of(retail[0])
    manifest = result["manifest"]
    gone = database.transactions.find_one_and_delete({"run_id": manifest["run_id"]})
    assert gone is not None
    try:
        checked = verify(database, manifest, COLLECTIONS)
        assert (checked.lost, checked.duplicates) == (1, 0)
        assert not checked.exact and any("not in the store" in p for p in checked.problems)
    finally:
        database.transactions.insert_one(gone)
    copy = {**gone, "_id": f"copy-{gone['_id']}"}
    database.transactions.insert_one(copy)
    try:
        checked = verify(database, manifest, COLLECTIONS)
        assert (checked.lost, checked.duplicates) == (0, 1)
        assert not checked.exact
    finally:
        database.transactions.delete_one({"_id": copy["_id"]})
    assert verify(database, manifest, COLLECTIONS).exact


def test_compare_of_a_result_with_itself_flags_no_regression(
    retail: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    summary, _ = result_of(retail[0])
    done = invoke("compare", summary["result"], summary["result"], "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["regressions"] == []
    assert all(c in (0.0, None) for f in data["figures"] for c in f["changes"])


def test_seed_demo_passes_its_thresholds_and_an_impossible_one_fails_by_name(
    stack: Settings, tmp_path: Path
) -> None:
    database = f"test_run_{uuid.uuid4().hex[:8]}"
    try:
        done = run_cli(
            "run", "seed-demo", "--rate", "4", "--duration", "10s", "--fresh", "--json",
            "--set", "thresholds.e2e_latency_p50_seconds=< 1ms", "--results", str(tmp_path),
            env=environment(database), timeout=300,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr[-2000:]
        summary, result = result_of(done)
        # only the impossible threshold fails: the scenario's own all pass, the data is exact
        assert len(summary["failed"]) == 1
        assert summary["failed"][0].startswith("e2e_latency_p50_seconds < 0.001s (measured")
        own = [t for t in result["thresholds"] if t["metric"] != "e2e_latency_p50_seconds"]
        assert {t["metric"] for t in own} >= {"produce_rate_ratio", "lost", "duplicates"}
        assert all(t["passed"] for t in own)
        assert result["verification"]["exact"] and result["verification"]["stored"] == 40
        report = Path(summary["report"]).read_text()
        assert "| e2e_latency_p50_seconds | < 0.001s |" in report and "FAIL" in report
    finally:
        with mongo.client(stack) as client:
            client.drop_database(database)


def test_ctrl_c_stops_the_producer_lets_the_sink_drain_and_still_reports(
    stack: Settings, tmp_path: Path
) -> None:
    database = f"test_run_{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "bankstream", "run", "retail-day", "--rate", "200", "--duration",
         "2m", "--processes", "1", "--fresh", "--json", "--results", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**__import__("os").environ, **environment(database)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "producing" in line:
                break
        time.sleep(4)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 130, err[-2000:]
        summary = json.loads(out.strip().splitlines()[-1])
        result = json.loads(Path(ROOT, summary["result"]).read_text())
        assert result["ended"] == "stopped"
        v = result["verification"]
        assert v["exact"], v["problems"]
        assert 0 < v["stored"] < 200 * 120 and v["stored"] == result["manifest"]["events"]["acked"]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        with mongo.client(stack) as client:
            client.drop_database(database)


def test_two_shard_hosts_merge_into_the_counts_of_one_run(stack: Settings, tmp_path: Path) -> None:
    from collections import Counter

    from bankstream import kafka

    database = f"test_run_{uuid.uuid4().hex[:8]}"
    run_id = f"two-hosts-{uuid.uuid4().hex[:6]}"
    hosts = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bankstream",
                "run",
                "fraud-ring",
                "--rate",
                "300",
                "--events",
                "2000",
                "--processes",
                "1",
                "--shard",
                shard,
                "--run-id",
                run_id,
                "--json",
                "--results",
                str(tmp_path),
                # two hosts' producers and sinks share this machine's 2 cores with Kafka and
                # MongoDB: this test is about merging, so latency may be what it is
                "--set",
                "thresholds.e2e_latency_p99_seconds=< 60s",
                "--set",
                "thresholds.max_lag_seconds=< 60s",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**__import__("os").environ, **environment(database)},
        )  # fmt: skip
        for shard in ("0/2", "1/2")
    ]
    try:
        outputs = [host.communicate(timeout=300) for host in hosts]
        for host, (out, err) in zip(hosts, outputs, strict=True):
            assert host.returncode == 0, err[-2000:]
            assert json.loads(out.strip().splitlines()[-1])["verdict"] == "pass"
        folders = sorted(tmp_path.glob(f"{run_id}.shard-*"))
        assert len(folders) == 2
        env = {"BANKSTREAM_MONGO_DATABASE": database}
        done = invoke("merge", *map(str, folders), "--results", str(tmp_path), "--json", env=env)
        assert done.returncode == 0, done.stderr
        merged = json.loads((tmp_path / run_id / "result.json").read_text())
        v = merged["verification"]
        assert v["exact"] and v["stored"] == v["expected"] == 2000
        assert v["checksum_mismatches"] == 0 and v["counts_match"]
        # the same counts as one host sending the whole run
        one_host = invoke("generate", "fraud-ring", "--events", "2000")
        counted = Counter(
            (e["type"], e["status"]) for e in map(json.loads, one_host.stdout.splitlines())
        )
        by_type = merged["manifest"]["by_type"]
        assert {(t, s): n for t, c in by_type.items() for s, n in c.items() if n} == dict(counted)
        assert merged["figures"]["latency"]["end_to_end"]["count"] > 0
        assert invoke("merge", str(folders[0]), env=env).returncode == 2  # a shard is missing
        # the Kubernetes way: the shard manifests the producers left in the runs collection
        store = tmp_path / "store"
        done = invoke(
            "merge", "--run-id", run_id, "--scenario", "fraud-ring", "--results", str(store),
            "--json", env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        from_store = json.loads((store / run_id / "result.json").read_text())
        assert from_store["verification"]["exact"] and from_store["verification"]["stored"] == 2000
        assert from_store["manifest"]["by_type"] == merged["manifest"]["by_type"]
        deferred = [t for t in from_store["thresholds"] if t["passed"] is None]
        assert {t["metric"] for t in deferred} == {"e2e_latency_p99_seconds", "max_lag_seconds"}
    finally:
        for host in hosts:
            if host.poll() is None:
                host.kill()
                host.communicate()
        admin = kafka.admin_client(stack)
        topic = f"{load('fraud-ring').scenario.delivery.topic}.{run_id}"
        for name in (topic, f"{topic}.dlq"):
            try:
                kafka.delete_topic(admin, name)
            except Exception:
                continue
        with mongo.client(stack) as client:
            client.drop_database(database)


def test_find_max_finds_a_rate_and_stops_within_its_budget(stack: Settings, tmp_path: Path) -> None:
    database = f"test_run_{uuid.uuid4().hex[:8]}"
    try:
        done = run_cli(
            "run", "retail-day", "--find-max", "--rate", "300", "--step", "4s", "--budget", "35s",
            "--processes", "1", "--json", "--results", str(tmp_path),
            "--junit", str(tmp_path / "capacity.xml"),
            env=environment(database), timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        folder = tmp_path / summary["run_id"]
        capacity = json.loads((folder / "capacity.json").read_text())
        assert capacity["found_rate"] >= 300 and capacity["seconds"] <= 35
        steps = capacity["steps"]
        assert steps[0]["rate"] == 300 and steps[0]["passed"]
        growing = next((i for i, s in enumerate(steps) if not s["passed"]), len(steps) - 1)
        assert [s["rate"] for s in steps[: growing + 1]] == [300 * 2**i for i in range(growing + 1)]
        assert (folder / "capacity.png").read_bytes()[:4] == b"\x89PNG"
        assert "Capacity of retail-day" in (folder / "report.md").read_text()
        suite = ET.parse(tmp_path / "capacity.xml").getroot().find("testsuite")
        assert suite is not None and suite.get("tests") == str(len(steps))
        found = {p.get("name"): p.get("value") for p in suite.iter("property")}["found_rate"]
        assert float(found) == capacity["found_rate"]
    finally:
        with mongo.client(stack) as client:
            client.drop_database(database)


def test_a_cold_local_store_is_warmed_once(
    stack: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness import warm

    monkeypatch.setattr(warm, "EVENTS", 2000)
    said: list[str] = []
    with mongo.client(stack) as client:
        cold, pid = warm.needs_warming(client)
        if pid is None:
            pytest.skip("not the local MongoDB-wire stand-in: never warmed")
        marker = client[warm.MARKER_DB].warm.find_one_and_delete({"_id": pid})
        try:
            assert warm.warm(client, load("retail-day"), said.append) is not None
            assert said and "warming" in said[0]
            assert warm.needs_warming(client) == (False, pid)
            assert warm.warm(client, load("retail-day"), said.append) is None  # once
            assert not any(n.startswith("bankstream_warm_") for n in client.list_database_names())
        finally:
            if marker is not None:
                client[warm.MARKER_DB].warm.replace_one({"_id": pid}, marker, upsert=True)


def test_a_sink_that_cannot_start_is_the_runs_named_problem(stack: Settings, tmp_path: Path):
    """The sink's metrics port is taken: the run produces nothing, fails, and says why (the
    sink's own error line), instead of failing on figures that were never measured."""
    import socket

    env = environment(f"test_run_{uuid.uuid4().hex[:8]}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["BANKSTREAM_SINK_METRICS_PORT"])))
        taken.listen()
        done = run_cli(
            "run", "retail-day", "--rate", "100", "--duration", "5s", "--json",
            "--results", str(tmp_path), env=env, timeout=120,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    summary, result = result_of(done)
    assert result["manifest"] is None or not result["manifest"]
    said = [p for p in result["problems"] if p.startswith("sink exited with 2: ")]
    assert said and "cannot serve /metrics on port" in said[0], result["problems"]
    assert any("cannot serve /metrics" in failed for failed in summary["failed"])


@pytest.mark.skipif(
    bool(os.environ.get("BANKSTREAM_MONGO_URI")),
    reason="the local stack's in-memory store only",
)
def test_a_run_the_local_store_cannot_hold_is_refused_before_it_starts(
    database: Database[Document], tmp_path: Path
) -> None:
    stored = database.transactions.estimated_document_count()
    done = run_cli(
        "run", "soak", "--results", str(tmp_path), env=environment(database.name), timeout=120
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bankstream: error: soak sends 7,200,000")
    assert "holds about" in lines[0] and " fit; " in lines[0] and "MONGO_HEAP" in lines[0]
    assert database.transactions.estimated_document_count() == stored  # nothing dropped
    assert not any(tmp_path.iterdir())  # no run folder: nothing started


def test_the_html_report_stands_alone_in_a_browser_with_the_network_off(
    retail: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    import shutil

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromium-driver are missing: run `make setup`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    summary, result = result_of(retail[0])
    report = Path(ROOT, summary["result"]).parent / "report.html"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,2000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        browser.get(report.as_uri())
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith(f"Run {result['run_id']}")
        images = browser.find_elements(By.TAG_NAME, "img")
        assert len(images) == len(result["charts"]) >= 3
        drawn = browser.execute_script(
            "return [...document.images].map(i => i.complete && i.naturalWidth > 0)"
        )
        assert all(drawn), drawn  # every chart drawn, from the file itself
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"
        )
        assert [name for name in fetched if not name.startswith("data:")] == []
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        assert {"Thresholds", "Verification", "Figures", "Charts"} <= set(headings)
        assert len(browser.find_elements(By.TAG_NAME, "table")) >= 2
    finally:
        browser.quit()


def test_an_aborting_threshold_ends_a_doomed_run_within_its_delay(
    database: Database[Document],
) -> None:
    """A limit no run can meet, over 3 s windows, abort after 2 s: the run ends within the
    window plus 2 s of the warm-up's end, not after its 60 s, and its result says why."""
    began = time.monotonic()
    done = run_cli(
        "run",
        "retail-day",
        "--rate",
        "300",
        "--duration",
        "60s",
        "--no-warm",
        "--set",
        "load.warmup=2s",
        "--set",
        "thresholds.e2e_latency_p99_seconds=< 1ms over 3s, abort after 2s",
        "--json",
        env=environment(database.name),
        timeout=120,
    )
    took = time.monotonic() - began
    assert done.returncode == 1, done.stderr[-2000:]
    _, result = result_of(done)
    assert result["ended"] == "aborted" and result["verdict"] == "fail"
    aborted = result["aborted"]
    assert "e2e_latency_p99_seconds < 0.001s over 3s" in aborted["reason"]
    assert "can no longer pass" in aborted["reason"]
    # the first whole window ends 3 s after the warm-up; the delay (2 s) is within it
    assert 2 + 3 - 1 <= aborted["at_seconds"] <= 2 + 3 + 2
    last = result["timeline"][-1][0]
    assert last <= aborted["at_seconds"] + 2  # nothing ran on after it
    assert took < 45 and result["verification"] is None
    assert any(p.startswith("aborted at t=") for p in result["problems"])
