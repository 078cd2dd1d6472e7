"""The pipeline performance page (a Streamlit page script)."""

from dashboard.pipeline import render

render()
