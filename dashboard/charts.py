"""Charts as Vega-Lite specs handed straight to Streamlit: ``st.line_chart`` and
``st.bar_chart`` build theirs through Altair (about 0.1 s a chart, most of a page's time)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st


def _long(frame: pd.DataFrame, index: str) -> pd.DataFrame:
    data = frame.copy()
    data.index.name = index
    data.columns = [str(c) for c in data.columns]
    return data.reset_index().melt(id_vars=index, var_name="series", value_name="value")


def lines(frame: pd.DataFrame, y: str = "", height: int = 220) -> None:
    """One line per column of ``frame``, its index along x (time or numbers)."""
    temporal = isinstance(frame.index, pd.DatetimeIndex)
    data = _long(frame, "x")
    spec: dict[str, Any] = {
        "mark": {"type": "line", "tooltip": True},
        "encoding": {
            "x": {"field": "x", "type": "temporal" if temporal else "quantitative", "title": ""},
            "y": {"field": "value", "type": "quantitative", "title": y},
            "color": {"field": "series", "type": "nominal", "title": ""},
        },
        "height": height,
    }
    st.vega_lite_chart(data, spec, width="stretch")


def bars(
    frame: pd.DataFrame,
    y: str = "",
    horizontal: bool = False,
    stack: bool = True,
    height: int = 260,
) -> None:
    """Bars of each column of ``frame`` by its index (stacked, or side by side)."""
    data = _long(frame, "label")
    category = {"field": "label", "type": "nominal", "title": "", "sort": None}
    value = {"field": "value", "type": "quantitative", "title": y, "stack": True if stack else None}
    encoding: dict[str, Any] = {
        "x": value if horizontal else category,
        "y": category if horizontal else value,
        "color": {"field": "series", "type": "nominal", "title": ""},
    }
    if len(frame.columns) == 1:
        del encoding["color"]  # one series: no legend
    elif not stack:
        encoding["yOffset" if horizontal else "xOffset"] = {"field": "series"}
    spec: dict[str, Any] = {
        "mark": {"type": "bar", "tooltip": True},
        "encoding": encoding,
        "height": height,
    }
    st.vega_lite_chart(data, spec, width="stretch")
