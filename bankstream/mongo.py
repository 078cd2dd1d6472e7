"""The MongoDB connector: one client built from settings, readiness with redacted errors."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError

from bankstream.errors import BankstreamError, UsageError
from bankstream.settings import Settings

Document = dict[str, Any]
# A write refused because the _id is taken: for the sink, "already written".
DUPLICATE_KEY = 11000


class MongoUnavailable(BankstreamError):
    """The configured MongoDB server did not answer."""


SOCKET_TIMEOUT_MS = 300_000


def client(settings: Settings, timeout: float | None = None) -> MongoClient[Document]:
    """A client for ``settings.mongo_uri``; server selection gives up after ``timeout`` seconds."""
    wait_ms = int((timeout if timeout is not None else settings.connect_timeout) * 1000)
    try:
        return MongoClient(
            settings.mongo_uri,
            serverSelectionTimeoutMS=wait_ms,
            connectTimeoutMS=wait_ms,
            # a store that stops answering mid-call (paused, wedged) is an error, not a hang;
            # long enough for the local server's one-pass reads of a large collection
            socketTimeoutMS=SOCKET_TIMEOUT_MS,
            appname="bankstream",
        )
    except (InvalidURI, ConfigurationError, ValueError, TypeError) as exc:
        msg = (
            f"BANKSTREAM_MONGO_URI ({settings.mongo_uri_redacted}) is not usable: "
            f"{settings.scrub(str(exc))}"
        )
        raise UsageError(msg) from None


def ping(settings: Settings, timeout: float | None = None) -> str:
    """The server's version string, or :class:`MongoUnavailable` after ``timeout`` seconds."""
    wait = timeout if timeout is not None else settings.connect_timeout
    with client(settings, wait) as mongo:
        try:
            mongo.admin.command("ping")
            version: str = mongo.server_info()["version"]
        except PyMongoError as exc:
            reason = settings.scrub(str(exc).split(", Timeout:")[0])
            msg = (
                f"MongoDB at {settings.mongo_uri_redacted} did not answer within {wait:g} s "
                f"({reason}); {settings.remedy('mongo_uri')}"
            )
            raise MongoUnavailable(msg) from None
    return version
