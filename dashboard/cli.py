"""`bankstream dashboard`: start the Streamlit app; Streamlit's own flags pass through."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bankstream.commands import duration, settings_from, summary
from bankstream.errors import UsageError

APP = Path(__file__).with_name("app.py")
# our defaults for Streamlit; a flag given on the command line comes later and wins
DEFAULT_FLAGS = ["--browser.gatherUsageStats", "false", "--server.headless", "true"]


def register(commands: Any) -> None:
    p = commands.add_parser(
        "dashboard",
        help=summary("dashboard"),
        description="Start the Streamlit dashboard: banking analytics from the sink's rollups "
        "(latest transactions, totals, volume, balances, top customers, declines, fraud, "
        "cities, channels, devices, an account's history) and pipeline performance (live "
        "from Prometheus, else the run records in MongoDB; past `bankstream run` results side "
        "by side; the capacity-search curve). Read-only. Streamlit's flags pass through, "
        "e.g. --server.port 8600 --server.address 0.0.0.0.",
        epilog="exit codes: 0 stopped; 1 MongoDB does not answer, or Streamlit failed; "
        "2 input to correct.",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="where `bankstream run` wrote its results (default: ./results)",
    )
    p.add_argument(
        "--refresh",
        type=duration(0.5, 3600, low_open=False),
        default=5.0,
        metavar="D",
        help="how often the live parts refresh (default: 5)",
    )
    p.set_defaults(run=run_dashboard, passthrough=True)


def streamlit_flags(extra: Sequence[str]) -> list[str]:
    """Check the flags meant for Streamlit (``--section.option VALUE`` or ``=VALUE``)."""
    try:
        from streamlit import config

        known: set[str] | None = set(config._config_options_template)
    except (ImportError, AttributeError):  # a Streamlit without it: Streamlit checks itself
        known = None
    out: list[str] = []
    words = list(extra)
    i = 0
    while i < len(words):
        word = words[i]
        name, has_value, _ = word.partition("=")
        option = name[2:] if name.startswith("--") else ""
        if not option or "." not in option or (known is not None and option not in known):
            close = ""
            if known is not None and option:
                import difflib

                found = difflib.get_close_matches(option, sorted(known), n=1)
                close = f" (did you mean --{found[0]}?)" if found else ""
            msg = (
                f"{word!r} is neither a dashboard flag nor a Streamlit option{close}; "
                "see `bankstream dashboard --help` and `streamlit run --help`"
            )
            raise UsageError(msg)
        if has_value:
            out.append(word)
            i += 1
            continue
        if i + 1 >= len(words):
            msg = f"{word} needs a value, e.g. {word} 8600"
            raise UsageError(msg)
        out += [word, words[i + 1]]
        i += 2
    return out


def run_dashboard(args: argparse.Namespace) -> int:
    flags = streamlit_flags(getattr(args, "extra", []))
    settings = settings_from(args)
    from bankstream import mongo

    version = mongo.ping(settings, timeout=min(settings.connect_timeout, 10.0))
    print(
        f"bankstream dashboard: MongoDB {version} at {settings.mongo_uri_redacted}, "
        f"results in {args.results}/, refresh {args.refresh:g} s",
        file=sys.stderr,
    )
    env = dict(os.environ)
    env["BANKSTREAM_DASHBOARD_RESULTS"] = str(args.results)
    env["BANKSTREAM_DASHBOARD_REFRESH"] = f"{args.refresh:g}"
    if args.config is not None:
        env["BANKSTREAM_CONFIG"] = str(args.config)
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), *DEFAULT_FLAGS, *flags]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached
