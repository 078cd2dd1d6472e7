"""What both pages share: the settings, one MongoDB client per app, the refresh period, money."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from bankstream.settings import Settings, load_settings
from dashboard.store import Store

# set by `bankstream dashboard` for the Streamlit process it starts
RESULTS_ENV = "BANKSTREAM_DASHBOARD_RESULTS"
REFRESH_ENV = "BANKSTREAM_DASHBOARD_REFRESH"


@st.cache_resource
def settings() -> Settings:
    return load_settings()


_opened: list[Any] = []


@st.cache_resource
def client() -> Any:
    from bankstream import mongo

    made = mongo.client(settings(), timeout=5.0)
    _opened.append(made)
    return made


def forget() -> None:
    """Drop the cached settings, client and queries (closing the clients): a fresh start."""
    st.cache_data.clear()
    st.cache_resource.clear()
    while _opened:
        _opened.pop().close()


@st.cache_resource
def _indexed() -> bool:
    return Store(client()[settings().mongo_database]).indexed


def store() -> Store:
    return Store(client()[settings().mongo_database], indexed=_indexed())


def database() -> Any:
    return client()[settings().mongo_database]


def results_folder() -> Path:
    return Path(os.environ.get(RESULTS_ENV) or "results")


def refresh_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get(REFRESH_ENV) or 5))
    except ValueError:
        return 5.0


def money(cents: float | int | None, currency: str = "R$") -> str:
    """Cents as a display amount (the stored figures stay integer cents)."""
    if cents is None:
        return "-"
    whole, part = divmod(abs(int(cents)), 100)
    sign = "-" if cents < 0 else ""
    return f"{sign}{currency}{' ' if currency else ''}{whole:,}.{part:02d}"


def store_problem(exc: Exception) -> None:
    """One line when MongoDB does not answer (the page keeps running and retries)."""
    text = settings().scrub(str(exc)).split(", Timeout:")[0][:300]
    st.error(
        f"MongoDB at {settings().mongo_uri_redacted} does not answer: {text}. Start it "
        "(`bankstream stack up`, or `docker compose up -d`) or set BANKSTREAM_MONGO_URI."
    )
