"""The root exception of bankstream's own code; the CLI turns it into one line on stderr."""

from __future__ import annotations

# Exit codes: 2 for input the user must correct (flags, settings, files), 1 for everything
# that went wrong while working (a service that does not answer, a process that died).
EXIT_USAGE = 2
EXIT_FAILURE = 1


class BankstreamError(Exception):
    """An error meant for a person: a one-line message that says what to do next."""

    exit_code = EXIT_FAILURE
    located = False  # True when each line of the message starts with FILE:LINE:

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(BankstreamError):
    """Bad input: a flag, a setting or a file the user has to correct."""

    exit_code = EXIT_USAGE


def printable(text: str, limit: int = 120) -> str:
    """``text`` safe for one terminal line: control characters (escape codes, line breaks)
    escaped, and cut to about ``limit`` characters."""
    out = "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )
    return out if len(out) <= limit else f"{out[: limit - 20]}... ({len(out):,} characters)"


def tame(line: str, word: int = 160) -> str:
    """A message line safe to print whatever values it quotes: control characters escaped and
    each run of more than ``word`` characters without a space cut (a long path still fits), so
    a value of 2 MB or an escape code given as a flag cannot flood or drive the terminal."""
    return " ".join(printable(part, word) for part in line.split(" "))
