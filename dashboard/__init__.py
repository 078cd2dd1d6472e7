"""`bankstream dashboard`: the Streamlit app (banking analytics, pipeline performance) and the
Grafana dashboard's queries. Read-only: it never writes to the store."""
