"""Value types of scenario files: money, durations, weights, threshold conditions.

Each type parses what a person writes (``80.50``, ``"10m"``, ``"< 2s"``) into an exact Python value
(integer cents, float seconds, ...) and serialises back to the same written form, so a scenario
round-trips through YAML unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from bankstream.durations import (
    DURATION_RE,
    NUMBER,
    UNITS,
    format_duration,
    parse_duration,
)

# ---------------------------------------------------------------- money (integer minor units)

MONEY_RE = re.compile(r"^-?\d+(\.\d{1,2})?$")
MAX_CENTS = 10**15  # R$ 10 trillion: far above any real amount, exact as a float of units


def parse_money(value: Any) -> int:
    """Currency units with at most two decimals (``80``, ``80.5``, ``"1234.56"``) -> cents."""
    if isinstance(value, bool):
        msg = f"expected an amount such as 80 or 80.50, got {value!r}"
        raise ValueError(msg)
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        value = repr(value)
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        for prefix in ("R$", "$"):
            text = text.removeprefix(prefix).strip()
        try:
            amount = Decimal(text)
        except InvalidOperation:
            amount = None
        if amount is not None and amount.is_finite():
            cents = amount * 100
            if cents != cents.to_integral_value():
                msg = f"expected at most 2 decimals (whole cents), got {value!r}"
                raise ValueError(msg)
            if abs(cents) > MAX_CENTS:
                msg = f"expected an amount of at most {MAX_CENTS // 100:,} (got {value!r})"
                raise ValueError(msg)
            return int(cents)
    msg = f"expected an amount such as 80 or 80.50, got {value!r}"
    raise ValueError(msg)


def format_money(cents: int) -> int | float:
    """Cents -> the number a person writes (whole units as int, else 2-decimal float)."""
    return cents // 100 if cents % 100 == 0 else float(Decimal(cents) / 100)


Money = Annotated[
    int,
    BeforeValidator(parse_money),
    PlainSerializer(format_money, return_type=int | float, when_used="always"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "pattern": r"^(R\$ ?)?-?\d+(\.\d{1,2})?$"},
            ],
            "description": "amount in currency units, at most 2 decimals (stored as integer cents)",
        }
    ),
]
PositiveMoney = Annotated[Money, Field(gt=0)]
NonNegativeMoney = Annotated[Money, Field(ge=0)]

# ---------------------------------------------------------------- durations (float seconds)

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="always"),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string", "pattern": DURATION_RE.pattern}],
            "description": "duration: a number of seconds or e.g. 250ms, 30s, 10m, 1h, 2d",
        }
    ),
]
PositiveDuration = Annotated[Duration, Field(gt=0)]
NonNegativeDuration = Annotated[Duration, Field(ge=0)]

# ---------------------------------------------------------------- weights and shares

Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def check_weights(weights: Mapping[Any, float] | Sequence[float], what: str) -> None:
    """Weights are relative: any non-negative numbers, but not all zero."""
    values = list(weights.values()) if isinstance(weights, Mapping) else list(weights)
    if not values:
        msg = f"{what} weights are empty (expected at least one positive weight)"
        raise ValueError(msg)
    if sum(values) <= 0:
        msg = f"{what} weights sum to zero (expected at least one positive weight)"
        raise ValueError(msg)


def check_shares(shares: list[float], what: str, tolerance: float = 1e-6) -> None:
    """Shares are absolute: they must sum to 1."""
    total = sum(shares)
    if abs(total - 1.0) > tolerance:
        msg = f"{what} shares must sum to 1 (got {total:.6g})"
        raise ValueError(msg)


# ---------------------------------------------------------------- threshold conditions

# a condition, and optionally its scope: every window of a length, or one stage of the load
SCOPE = rf"(?:\s+over\s+({NUMBER})\s*(ms|s|m|h|d)|\s+in\s+stage\s+([1-9][0-9]{{0,3}}))?"
# and optionally: stop the run as soon as it can no longer pass (after a delay from the warm-up)
ABORT = rf"(\s*,\s*abort(?:\s+after\s+({NUMBER})\s*(ms|s|m|h|d))?)?"
CONDITION_RE = re.compile(
    rf"^\s*(<=|>=|==|!=|<|>)\s*(-?{NUMBER})\s*(ms|s|m|h|%)?{SCOPE}{ABORT}\s*$"
)
MAX_CONDITION = 1e15
MAX_WINDOW = 86400.0  # seconds
OPERATORS = ("<=", ">=", "==", "!=", "<", ">")


def parse_scoped_condition(value: Any) -> tuple[str, float, float | None, int | None]:
    """``"< 2s"``, ``">= 0.98"``, ``"<= 500ms over 60s"``, ``"< 1s in stage 2"`` -> (operator,
    value, window seconds or None, stage number or None)."""
    if isinstance(value, str):
        match = CONDITION_RE.match(value)
        if match:
            op, number, unit, window, window_unit, stage = match.groups()[:6]
            amount = float(number)
            if unit == "%":
                amount /= 100
            elif unit:
                amount *= UNITS[unit]
            over = float(window) * UNITS[window_unit] if window is not None else None
            if abs(amount) <= MAX_CONDITION and (over is None or 1 <= over <= MAX_WINDOW):
                return op, amount, over, int(stage) if stage is not None else None
    scoped = isinstance(value, str) and (" over " in value or " stage" in value)
    hint = (
        ", over every window of 1s to 1d ('< 1s over 60s') or in one stage ('< 1s in stage 2')"
        if scoped
        else ""
    )
    msg = f"expected a condition such as '< 2s', '>= 0.98' or '== 0'{hint}, got {value!r}"
    raise ValueError(msg)


def parse_abort(value: Any) -> tuple[bool, float]:
    """``"< 2s over 30s, abort after 1m"`` -> (abort, delay seconds); (False, 0) without it.
    The condition itself is read by :func:`parse_scoped_condition`."""
    match = CONDITION_RE.match(value) if isinstance(value, str) else None
    if match is None or match.group(7) is None:
        return False, 0.0
    delay, unit = match.group(8), match.group(9)
    seconds = float(delay) * UNITS[unit] if delay is not None else 0.0
    if not 0 <= seconds <= MAX_WINDOW:
        msg = f"abort after 0s to 1d, got {value!r}"
        raise ValueError(msg)
    return True, seconds


def parse_condition(value: Any) -> tuple[str, float]:
    """``"< 2s"``, ``">= 0.98"``, ``"== 0"``, ``"<= 500ms"``, ``">= 98%"`` -> (operator, value)
    (a scope, if any, is read and left out: :func:`parse_scoped_condition` keeps it)."""
    op, amount, _, _ = parse_scoped_condition(value)
    return op, amount


def format_scope(over: float | None = None, stage: int | None = None) -> str:
    """`` over 1m``, `` in stage 2`` or nothing."""
    if over is not None:
        return f" over {format_duration(over)}"
    if stage is not None:
        return f" in stage {stage}"
    return ""


def format_condition(
    op: str,
    value: float,
    unit: str = "",
    over: float | None = None,
    stage: int | None = None,
    abort: bool = False,
    abort_after: float = 0.0,
) -> str:
    number = int(value) if value == int(value) else value
    text = f"{op} {number}{unit}{format_scope(over, stage)}"
    if abort:
        text += ", abort" + (f" after {format_duration(abort_after)}" if abort_after else "")
    return text
