"""The provisioned Grafana dashboard, built from :data:`dashboard.promql.PANELS`.

``python -m dashboard.grafana > deploy/grafana/dashboards/bankstream.json`` (a test checks the
committed file is what this writes)."""

from __future__ import annotations

import json
from typing import Any

from dashboard.promql import PANELS

UID = "bankstream-pipeline"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    for i, panel in enumerate(PANELS):
        panels.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": panel.title,
                "description": panel.description,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {
                    "defaults": {"unit": panel.unit},
                    "overrides": [_limit_style(j) for j in _limit_refs(panel)],
                },
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                "targets": [
                    {
                        "refId": chr(ord("A") + j),
                        "datasource": DATASOURCE,
                        "expr": q.expr,
                        "legendFormat": q.legend,
                    }
                    for j, q in enumerate((*panel.queries, *panel.limits))
                ],
            }
        )
    return {
        "uid": UID,
        "title": "bankstream pipeline",
        "tags": ["bankstream"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "5s",
        "time": {"from": "now-15m", "to": "now"},
        "panels": panels,
    }


def _limit_refs(panel: Any) -> list[str]:
    first = len(panel.queries)
    return [chr(ord("A") + first + j) for j in range(len(panel.limits))]


def _limit_style(ref: str) -> dict[str, Any]:
    """A threshold's limit drawn as a dashed red line."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        ],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    print(render(), end="")
