"""The Prometheus connector: readiness and instant queries over its HTTP API."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from bankstream.errors import BankstreamError
from bankstream.settings import Settings


class PrometheusUnavailable(BankstreamError):
    """The configured Prometheus server did not answer."""


def _request(settings: Settings, path: str, base: str | None = None) -> urllib.request.Request:
    """A request for ``path`` of ``base`` (default: Prometheus's URL); user:password in the
    URL becomes basic authentication."""
    parts = urllib.parse.urlsplit(settings.prometheus_url if base is None else base)
    headers = {}
    if parts.username is not None:
        pair = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urllib.request.Request(parts.geturl() + path, headers=headers)


def _get(settings: Settings, path: str, timeout: float) -> bytes:
    shown = settings.prometheus_url_redacted
    try:
        with urllib.request.urlopen(_request(settings, path), timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 422):  # the API's own error answer (bad query), JSON in the body
            error_body: bytes = exc.read()
            return error_body
        msg = f"Prometheus at {shown} answered {exc.code} {exc.reason} for {path}"
        raise PrometheusUnavailable(msg) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        msg = (
            f"Prometheus at {shown} did not answer within {timeout:g} s "
            f"({settings.scrub(str(reason))}); {settings.remedy('prometheus_url')}"
        )
        raise PrometheusUnavailable(msg) from None


def ready(settings: Settings, timeout: float | None = None) -> str:
    """Prometheus's readiness text, or :class:`PrometheusUnavailable`."""
    wait = timeout if timeout is not None else settings.connect_timeout
    return _get(settings, "/-/ready", wait).decode().strip()


def query(settings: Settings, promql: str, timeout: float | None = None) -> list[dict[str, Any]]:
    """The result vector of an instant query."""
    wait = timeout if timeout is not None else settings.connect_timeout
    body = _get(settings, "/api/v1/query?" + urllib.parse.urlencode({"query": promql}), wait)
    answer = json.loads(body)
    if answer.get("status") != "success":
        msg = f"Prometheus rejected the query {promql!r}: {answer.get('error')}"
        raise BankstreamError(msg)
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def pushgateway_ready(settings: Settings, timeout: float) -> str:
    """The Pushgateway answering ``/-/ready`` (else :class:`PrometheusUnavailable`)."""
    import http.client

    shown = settings.scrub(settings.pushgateway_url)
    try:
        request = _request(settings, "/-/ready", settings.pushgateway_url)
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        msg = (
            f"the Pushgateway at {shown} did not answer within {timeout:g} s "
            f"({settings.scrub(str(reason))}); {settings.remedy('pushgateway_url')}"
        )
        raise PrometheusUnavailable(msg) from None
    return "Pushgateway ready"
