"""Pipeline performance: live from Prometheus (the Grafana dashboard's queries) when it
answers, else the run records in MongoDB; the results of past `bankstream run`s side by side;
the capacity-search curve."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st
from pymongo.errors import PyMongoError

from dashboard import charts, common
from dashboard import pipeline_data as data
from dashboard.promql import PANELS

TTL = common.refresh_seconds()
WINDOWS = {"last 5 minutes": 5.0, "last 15 minutes": 15.0, "last hour": 60.0}


@st.cache_data(ttl=TTL, show_spinner=False)
def _ready(url: str) -> bool:
    return data.prometheus_ready(url)


@st.cache_data(ttl=TTL, show_spinner=False)
def _results(folder: str) -> list[dict[str, Any]]:
    from pathlib import Path

    return data.results(Path(folder))


@st.cache_data(ttl=TTL, show_spinner=False)
def _capacities(folder: str) -> list[dict[str, Any]]:
    from pathlib import Path

    return data.capacities(Path(folder))


def render() -> None:
    st.title("Pipeline performance")
    settings = common.settings()
    url = settings.prometheus_url
    left, right = st.columns([1, 3])
    window = left.selectbox("Window", list(WINDOWS), index=1)
    live = right.toggle(f"Live (refresh every {TTL:g} s)", value=True)
    st.fragment(run_every=TTL if live else None)(_live)(url, WINDOWS[window])
    _past_runs()
    _capacity()


def _live(url: str, minutes: float) -> None:
    settings = common.settings()
    if _ready(url):
        st.subheader("Live, from Prometheus")
        st.caption(
            f"{settings.prometheus_url_redacted}: the same PromQL as the Grafana dashboard "
            f"(deploy/grafana), the last {minutes:g} minutes."
        )
        columns = st.columns(2)
        frames = data.panel_frames(url, PANELS, minutes)
        for i, (panel, frame) in enumerate(zip(PANELS, frames, strict=True)):
            with columns[i % 2]:
                st.markdown(f"**{panel.title}**")
                if isinstance(frame, data.PrometheusError):
                    st.warning(settings.scrub(str(frame)))
                    continue
                if frame.empty:
                    st.caption("no data in this window")
                else:
                    charts.lines(frame, height=220)
        return
    st.subheader("Run records, from MongoDB")
    st.info(
        f"Prometheus does not answer at {settings.prometheus_url_redacted}; showing the "
        "producer's run records and the sink's stored counts instead. Start it with "
        "`bankstream stack up` (or set BANKSTREAM_PROMETHEUS_URL)."
    )
    try:
        db = common.database()
        records = data.run_records(db)
        stored = {r.run: r.count for r in common.store().runs()}
    except PyMongoError as exc:
        common.store_problem(exc)
        return
    if records.empty:
        st.caption("No run records in MongoDB yet.")
        return
    records["stored"] = records["run"].map(stored)
    st.dataframe(records, hide_index=True)
    chart = records.set_index("run")[["acked", "stored"]].fillna(0)
    charts.bars(chart, "events", stack=False)


def _past_runs() -> None:
    st.subheader("Past runs (`bankstream run`)")
    folder = common.results_folder()
    found = _results(str(folder))
    if not found:
        st.caption(f"No result in {folder}/ yet: `bankstream run SCENARIO` writes one.")
        return
    table = pd.DataFrame([data.summary_row(r) for r in found])
    st.dataframe(table, hide_index=True)
    ids = [r["run_id"] for r in found]
    by_id = {r["run_id"]: r for r in found}
    chosen = st.selectbox("Timeline of run", ids, index=0)
    timeline = data.timeline(by_id[chosen])
    wanted = {"target_rate", "produce_rate", "sink_rate", "lag", "e2e_p50", "e2e_p99"}
    wanted |= {"delivery_p50", "delivery_p99"}
    if not timeline.empty and wanted <= set(timeline.columns):
        left, right = st.columns(2)
        with left:
            st.markdown("**Produced vs sunk (events/s)**")
            rates = timeline[["target_rate", "produce_rate", "sink_rate"]].astype("float64")
            charts.lines(rates, height=220)
            st.markdown("**Consumer lag (messages)**")
            charts.lines(timeline[["lag"]], height=220)
        with right:
            st.markdown("**End-to-end latency (s)**")
            charts.lines(timeline[["e2e_p50", "e2e_p99"]].astype("float64"), height=220)
            st.markdown("**Delivery latency (s)**")
            charts.lines(timeline[["delivery_p50", "delivery_p99"]].astype("float64"), height=220)
    picked = st.multiselect(
        "Compare runs side by side (the first is the baseline)",
        ids,
        default=[ids[1], ids[0]] if len(ids) >= 2 else ids,  # the latest against the one before
    )
    if len(picked) >= 2:
        from harness.compare import compare
        from harness.compare import table as compare_table

        results = [by_id[r] for r in picked]
        try:
            rows = compare_table(results, compare(results))
        except (KeyError, TypeError, ValueError) as exc:  # a result of another version
            st.warning(f"These results cannot be compared ({type(exc).__name__}: {exc}).")
        else:
            st.dataframe(pd.DataFrame(rows[1:], columns=rows[0]), hide_index=True)
        st.caption("A change is flagged only beyond the runs' own noise (`bankstream compare`).")


def _capacity() -> None:
    st.subheader("Capacity search (`bankstream run --find-max`)")
    found = _capacities(str(common.results_folder()))
    if not found:
        st.caption("No capacity search yet: `bankstream run SCENARIO --find-max` writes one.")
        return
    names = [f"{c.get('run_id')} ({c.get('scenario')})" for c in found]
    index = st.selectbox("Search", range(len(found)), format_func=lambda i: names[i])
    search = found[index]
    steps = pd.DataFrame([s for s in search["steps"] if isinstance(s, dict) and "achieved" in s])
    found_rate = search.get("found_rate")
    st.caption(
        f"Highest rate that met every threshold: {found_rate:,.0f} events/s."
        if found_rate
        else "No rate met every threshold."
    )
    if steps.empty or not {"rate", "sink_rate", "e2e_p50", "e2e_p99"} <= set(steps.columns):
        return
    curve = steps.set_index("rate")
    left, right = st.columns(2)
    with left:
        st.markdown("**Achieved vs target (events/s)**")
        charts.lines(curve[["achieved", "sink_rate"]].astype("float64"), height=240)
    with right:
        st.markdown("**End-to-end latency vs target rate (s)**")
        charts.lines(curve[["e2e_p50", "e2e_p99"]].astype("float64"), height=240)
    st.dataframe(steps, hide_index=True)
