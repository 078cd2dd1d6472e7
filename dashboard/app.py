"""The Streamlit app `bankstream dashboard` starts: two pages."""

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="bankstream", layout="wide")
views = Path(__file__).parent / "views"
page = st.navigation(
    [
        st.Page(views / "analytics.py", title="Banking analytics", default=True),
        st.Page(views / "pipeline.py", title="Pipeline performance"),
    ]
)
page.run()
