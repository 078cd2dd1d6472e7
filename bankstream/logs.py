"""The one logging configuration point: stdlib logging, rendered by rich on stderr."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler

# librdkafka's own log lines (connection refused, retries) arrive on this logger; they are noise
# for a person unless asked for with --verbose.
LIBRDKAFKA_LOGGER = "bankstream.librdkafka"


def configure(verbose: int = 0) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=verbose > 1)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(
        logging.DEBUG if verbose > 1 else logging.CRITICAL
    )
    for noisy in ("pymongo", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose > 1 else logging.ERROR)
