"""The banking analytics page (a Streamlit page script)."""

from dashboard.analytics import render

render()
