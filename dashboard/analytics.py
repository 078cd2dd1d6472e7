"""Banking analytics: what the sink stored, from its rollups (never a scan of transactions)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st
from pymongo.errors import PyMongoError

from bankstream.events import TX_TYPES
from dashboard import charts, common, store
from dashboard.store import Run

TTL = common.refresh_seconds()
WINDOWS: dict[str, dt.timedelta | None] = {
    "whole run": None,
    "last 7 days": dt.timedelta(days=7),
    "last 24 hours": dt.timedelta(hours=24),
    "last 6 hours": dt.timedelta(hours=6),
    "last hour": dt.timedelta(hours=1),
}


@st.cache_data(ttl=TTL, show_spinner=False)
def _runs() -> list[Run]:
    return common.store().runs()


@st.cache_data(ttl=TTL, show_spinner=False)
def _run(run: str) -> Run | None:
    return common.store().run(run)


@st.cache_data(ttl=TTL, show_spinner=False)
def _hourly(
    run: str, start: dt.datetime, end: dt.datetime, minutes: bool
) -> dict[str, list[dict[str, Any]]]:
    return common.store().hourly(run, start, end, minutes)


@st.cache_data(ttl=TTL, show_spinner=False)
def _top(run: str, n: int) -> pd.DataFrame:
    return common.store().top_customers(run, n)


@st.cache_data(ttl=max(TTL, 30.0), show_spinner=False)
def _balances() -> Any:
    return common.store().balance_histogram()


@st.cache_data(ttl=TTL, show_spinner=False)
def _latest(run: Run, n: int, types: tuple[str, ...]) -> pd.DataFrame:
    return common.store().latest(run, n, list(types) or None)


def _prefetch(run: Run, start: dt.datetime, end: dt.datetime, types: tuple[str, ...]) -> None:
    """Fill the caches the page reads, side by side: the server answers the reads in
    parallel (each waits on MongoDB, not on Python)."""
    from concurrent.futures import ThreadPoolExecutor

    from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

    ctx = get_script_run_ctx()

    def call(job: Any) -> Any:
        import threading

        add_script_run_ctx(threading.current_thread(), ctx)
        return job()

    jobs = [
        lambda: _latest(run, 50, types),
        lambda: _hourly(run.run, start, end, False),
        lambda: _top(run.run, 20),
        _balances,
    ]
    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(call, jobs))


def _span(run: Run, window: str) -> tuple[dt.datetime, dt.datetime]:
    """The simulated time range shown: whole hours around the run's stored events."""
    end = run.last.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    size = WINDOWS[window]
    start = run.first.replace(minute=0, second=0, microsecond=0)
    if size is not None:
        start = max(start, end - size)
    return start, end


def _money_columns(frame: pd.DataFrame, *names: str) -> pd.DataFrame:
    out = frame.copy()
    for name in names:
        if name in out.columns:
            out[name + " (R$)"] = out.pop(name).astype("float64") / 100.0
    return out


def render() -> None:
    st.title("Banking analytics")
    try:
        runs = _runs()
    except PyMongoError as exc:
        common.store_problem(exc)
        return
    if not runs:
        st.info(
            "No run in the store yet: start one with `bankstream run retail-day --rate 400 "
            "--duration 40s` (or `bankstream produce` and `bankstream sink`)."
        )
        return
    names = [r.run for r in runs]
    left, middle, right = st.columns([2, 1, 2])
    chosen = left.selectbox(
        "Run",
        names,
        format_func=lambda r: f"{r} ({next(x.scenario for x in runs if x.run == r)})",
    )
    window = middle.selectbox("Time range (simulated)", list(WINDOWS), index=0)
    types = tuple(right.multiselect("Types", list(TX_TYPES), default=[]))
    live = st.toggle(f"Live (refresh every {TTL:g} s)", value=True)
    body = st.fragment(run_every=TTL if live else None)(_body)
    body(chosen, window, types)


def _body(chosen: str, window: str, types: tuple[str, ...]) -> None:
    try:
        _show(chosen, window, types)
    except PyMongoError as exc:
        common.store_problem(exc)


def _show(chosen: str, window: str, types: tuple[str, ...]) -> None:
    run = _run(chosen)
    if run is None:
        st.warning(f"Run {chosen} is not in the store any more.")
        return
    start, end = _span(run, window)
    _prefetch(run, start, end, types)
    cols = st.columns(5)
    cols[0].metric("Events stored", f"{run.count:,}")
    cols[1].metric("Money moved (approved, R$)", common.money(run.amount, currency=""))
    cols[2].metric("Declined", f"{run.declined:,}")
    cols[3].metric("Fraud events", f"{run.fraud:,}")
    cols[4].metric("Simulated span", f"{(run.last - run.first).total_seconds() / 3600:,.1f} h")
    st.caption(
        f"Scenario {run.scenario}; simulated time {run.first:%Y-%m-%d %H:%M} to "
        f"{run.last:%Y-%m-%d %H:%M} UTC; showing {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}."
    )

    st.subheader("Latest transactions")
    latest = _latest(run, 50, types)
    st.dataframe(_money_columns(latest, "amount", "balance_after"), hide_index=True, height=260)

    rollups = _hourly(run.run, start, end, False)
    hourly = store.by_type(rollups["hour"], list(types))
    st.subheader("Totals by type and status")
    if hourly.empty:
        st.caption("No events in this range.")
    else:
        totals = hourly.groupby(["type", "status"])[["count", "amount"]].sum().reset_index()
        left, right = st.columns(2)
        left.dataframe(_money_columns(totals, "amount"), hide_index=True)
        pivot = totals.pivot_table(index="type", columns="status", values="count", fill_value=0)
        with right:
            charts.bars(pivot, "events")
        st.download_button(
            "Download this view (CSV: hour x type x status)",
            hourly.to_csv(index=False).encode(),
            file_name=f"bankstream-{run.run}-by-hour.csv",
            mime="text/csv",
        )

    st.subheader("Volume over time")
    minutes = end - start <= dt.timedelta(hours=3)
    series = (
        store.by_type(_hourly(run.run, start, end, True)["minute"], list(types))
        if minutes
        else hourly
    )
    if series.empty:
        st.caption("No events in this range.")
    else:
        volume = series.pivot_table(index="t", columns="type", values="count", aggfunc="sum")
        charts.lines(volume.fillna(0), "events per " + ("minute" if minutes else "hour"), 300)

    left, right = st.columns(2)
    with left:
        st.subheader("Balance distribution")
        counts, edges, accounts = _balances()
        if accounts:
            labels = [f"{common.money(int(e))}" for e in edges[:-1]]
            frame = pd.DataFrame({"accounts": counts}, index=pd.Index(labels, name="balance from"))
            charts.bars(frame, "accounts")
            st.caption(
                f"Current balance of each of the store's {accounts:,} checking accounts (their "
                "latest event, of any run; credit and prepaid card accounts are not counted), "
                "the 1% at the tails folded into the end bins."
            )
    with right:
        st.subheader("Top customers by money out")
        top = _top(run.run, 20)
        st.dataframe(_money_columns(top, "debits", "credits"), hide_index=True, height=300)

    left, right = st.columns(2)
    with left:
        st.subheader("Declines by reason")
        declines = store.breakdown(rollups["hour_decline"], "reason")
        _bars(declines, "reason", "count")
    with right:
        st.subheader("Fraud by typology")
        fraud = store.breakdown(rollups["hour_fraud"], "typology")
        _bars(fraud, "typology", "count")
        if not fraud.empty:
            st.dataframe(_money_columns(fraud, "amount"), hide_index=True)

    left, middle, right = st.columns(3)
    with left:
        st.subheader("By city")
        _bars(store.breakdown(rollups["hour_city"], "city").head(20), "city", "count")
    with middle:
        st.subheader("By channel")
        _bars(store.breakdown(rollups["hour_channel"], "channel"), "channel", "count")
    with right:
        st.subheader("By device")
        _bars(store.breakdown(rollups["hour_device"], "device"), "device", "count")
    st.caption("Breakdowns count every event of the range; amounts are approved money.")

    _drill_down(run)


def _bars(frame: pd.DataFrame, label: str, value: str) -> None:
    if frame.empty:
        st.caption("None in this range.")
        return
    charts.bars(frame.set_index(label)[[value]], "events", horizontal=True)


def _drill_down(run: Run) -> None:
    st.subheader("Account drill-down")
    account = st.text_input(
        "Account id", key="account", placeholder="e.g. one from the latest transactions"
    ).strip()
    if not account:
        return
    reader = common.store()
    state = reader.account(account)
    if state is None:
        st.warning(f"No account {account!r} in the store.")
        return
    cols = st.columns(4)
    cols[0].metric("Balance", common.money(state.get("balance")))
    cols[1].metric("Customer", str(state.get("customer_name") or state.get("customer")))
    cols[2].metric("Segment", str(state.get("segment")))
    cols[3].metric("Events (last seq)", f"{state.get('last_seq', 0):,}")
    history = reader.account_history(account, run.run)
    if history.empty:
        st.caption(f"No transaction of this account in run {run.run}.")
        return
    chart = history.sort_values("seq").set_index("event_time")[["balance_after"]] / 100.0
    charts.lines(chart, "balance (R$)")
    st.dataframe(_money_columns(history, "amount", "balance_after"), hide_index=True)
