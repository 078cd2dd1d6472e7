"""Kafka Connect's REST API, as far as bankstream needs it: is the worker there with the MongoDB
sink connector, and a connector created, watched and deleted for a run."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from bankstream.errors import BankstreamError
from bankstream.settings import Settings

SINK_CLASS = "com.mongodb.kafka.connect.MongoSinkConnector"


class ConnectUnavailable(BankstreamError):
    """Kafka Connect did not answer as asked."""


def call(
    settings: Settings, method: str, path: str, body: Any = None, timeout: float = 10.0
) -> Any:
    """One REST call; its JSON answer (None when empty). An error answer or no answer is a
    :class:`ConnectUnavailable` whose message carries Connect's own reason, secrets masked."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (an http(s) URL, checked by the settings)
        settings.connect_url + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            text = answer.read()
        return json.loads(text) if text.strip() else None
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("message", "")
        except ValueError:
            reason = ""
        msg = f"Kafka Connect answered {exc.code} to {method} {path}: {reason or exc.reason}"
        raise ConnectUnavailable(settings.scrub(msg)[:500]) from None
    except (OSError, ValueError) as exc:
        where = settings.scrub(settings.connect_url)
        msg = f"Kafka Connect at {where} did not answer ({exc})"
        raise ConnectUnavailable(settings.scrub(msg)) from None


def probe(settings: Settings, timeout: float) -> str:
    """Connect's version, once it answers with the MongoDB sink connector installed."""
    about = call(settings, "GET", "/", timeout=timeout)
    plugins = call(settings, "GET", "/connector-plugins", timeout=timeout)
    versions = [p.get("version") for p in plugins or [] if p.get("class") == SINK_CLASS]
    if not versions:
        where = settings.scrub(settings.connect_url)
        msg = (
            f"Kafka Connect {about.get('version')} at {where} has no {SINK_CLASS}: install "
            "mongo-kafka-connect in its plugin.path"
        )
        raise ConnectUnavailable(msg)
    return f"Connect {about.get('version')}, MongoDB sink connector {versions[0]}"


def create(settings: Settings, name: str, config: dict[str, str]) -> None:
    call(settings, "PUT", f"/connectors/{name}/config", config, timeout=30)


def delete(settings: Settings, name: str) -> None:
    try:
        call(settings, "DELETE", f"/connectors/{name}", timeout=30)
    except ConnectUnavailable as exc:
        if " 404 " not in exc.message:
            raise


def failures(settings: Settings, name: str) -> list[str]:
    """The connector's and its tasks' failures, each as its trace's first line."""
    status = call(settings, "GET", f"/connectors/{name}/status") or {}
    found = []
    for part in [status.get("connector", {}), *status.get("tasks", [])]:
        if part.get("state") == "FAILED":
            trace = str(part.get("trace") or "failed").strip().splitlines()
            found.append(settings.scrub(trace[0] if trace else "failed")[:300])
    return found
