"""The dashboard without services: its flags, that it cannot write, the Grafana dashboard."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from bankstream.errors import UsageError
from dashboard.cli import streamlit_flags
from dashboard.grafana import dashboard, render
from dashboard.promql import PANELS, resolve
from tests.conftest import ROOT, invoke

WRITES = {
    "insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one",
    "delete_many", "bulk_write", "drop", "drop_collection", "drop_database", "create_index",
    "create_indexes", "find_one_and_update", "find_one_and_replace", "find_one_and_delete",
    "rename", "create_collection",
}  # fmt: skip


def test_streamlit_flags_pass_through_checked():
    assert streamlit_flags(["--server.port", "8600", "--theme.base=dark"]) == [
        "--server.port",
        "8600",
        "--theme.base=dark",
    ]
    for bad, said in (
        (["--server.prot", "1"], "did you mean --server.port?"),
        (["--server.port"], "needs a value"),
        (["8600"], "neither a dashboard flag nor a Streamlit option"),
        (["--nonsense"], "neither a dashboard flag"),
    ):
        with pytest.raises(UsageError, match=said.replace("?", r"\?")):
            streamlit_flags(bad)


def test_bad_flags_are_one_line_and_exit_2():
    done = invoke("dashboard", "--refresh", "0")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    done = invoke("dashboard", "--server.prot", "1")
    assert done.returncode == 2 and "--server.port" in done.stderr
    done = invoke("sink", "--server.port", "1")  # only the dashboard passes flags on
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_the_dashboard_package_never_calls_a_write():
    called = set()
    for path in Path(ROOT, "dashboard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                called.add((node.func.attr, path.name))
    assert {(name, f) for name, f in called if name in WRITES} == set()
    assert ("find", "store.py") in called  # the check sees the store's calls


def test_grafana_dashboard_is_committed_as_built():
    committed = (ROOT / "deploy/grafana/dashboards/bankstream.json").read_text()
    assert committed == render(), "regenerate: python -m dashboard.grafana > deploy/grafana/..."
    built = dashboard()
    exprs = [t["expr"] for p in built["panels"] for t in p["targets"]]
    assert len(exprs) == sum(len(p.queries) + len(p.limits) for p in PANELS)
    assert len(set(exprs)) == len(exprs)
    # each limit line dashed red, matched by its own query
    for panel, built_panel in zip(PANELS, built["panels"], strict=True):
        refs = [t["refId"] for t in built_panel["targets"]][len(panel.queries) :]
        styled = [o["matcher"]["options"] for o in built_panel["fieldConfig"]["overrides"]]
        assert refs == styled
    assert all(
        t["datasource"]["uid"] == "prometheus" for p in built["panels"] for t in p["targets"]
    )
    provisioned = json.loads(committed)
    assert provisioned["uid"] == "bankstream-pipeline"


def test_rate_interval_is_filled_for_prometheus():
    for panel in PANELS:
        for query in panel.queries:
            assert "$" not in resolve(query.expr, "30s")
