"""The root exception of the load generator, and its kind for input the user must correct."""

from __future__ import annotations

from bankstream.errors import BankstreamError, UsageError


class LoadgenError(BankstreamError):
    """Something went wrong while generating or producing events (exit code 1)."""


class LoadgenUsageError(LoadgenError, UsageError):
    """A scenario, flag or setting the load generator cannot run as it is (exit code 2): found by
    the preflight check, before any output is opened or any process starts."""
