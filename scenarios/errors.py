"""Scenario problems, each located in its file: ``FILE:LINE: path.to.key: what is wrong``."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from bankstream.errors import UsageError, printable, tame
from scenarios.model import COLLECTION_RE, CURRENCY_RE, NAME_RE, TOPIC_RE

Path = tuple[str | int, ...]
# where each key of the merged document was written: (file name, line); None = not in a file
Origins = Mapping[Path, tuple[str, int | None]]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = (
            f"{printable(self.file)}:{self.line}" if self.line is not None else printable(self.file)
        )
        message = printable(tame(self.message), 300)  # long values cut, each on its own
        return f"{where}: {printable(self.path)}: {message}" if self.path else f"{where}: {message}"


class ScenarioError(UsageError):
    """One or more problems in scenario files; the message has one line per problem."""

    located = True

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


def dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


def locate(origins: Origins, path: Path, default_file: str) -> tuple[str, int | None]:
    """File and line of the deepest written key on ``path`` (or of an override below it)."""
    if path:  # an override below the key is the likelier cause than the file
        below = [origins[k] for k in origins if k[: len(path)] == path and origins[k][1] is None]
        if below:
            return below[0]
    for end in range(len(path), -1, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return default_file, None


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def items(count: object) -> str:
    """'1 item', '3 items'."""
    return f"{count} item" if count == 1 else f"{count} items"


def closest(word: object, choices: Sequence[str]) -> str | None:
    """The choice most like ``word`` (case does not count), if any is close."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def _suggest(word: object, choices: Sequence[str]) -> str:
    close = closest(word, choices)
    return f"; did you mean {close!r}?" if close else ""


# what the scenario model's patterns mean, said in words (keyed by the model's own constants)
PATTERNS = {
    NAME_RE: "a lower-case name of letters, digits, '-' and '_'",
    TOPIC_RE: "a Kafka topic name (letters, digits, '.', '_' and '-')",
    CURRENCY_RE: "a three-letter currency code such as BRL",
    COLLECTION_RE: "a MongoDB collection name",
}


def _expected(err: Mapping[str, Any]) -> str | None:
    """The 'expected ...' phrase of a type or constraint error, None for other errors."""
    kind, ctx = err["type"], err.get("ctx") or {}
    phrases = {
        "int_type": "a whole number",
        "int_parsing": "a whole number",
        "int_from_float": "a whole number",
        "float_type": "a number",
        "float_parsing": "a number",
        "finite_number": "a finite number",
        "bool_type": "true or false",
        "bool_parsing": "true or false",
        "string_type": "text",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
        "list_type": "a list",
        "date_type": "a date such as 2025-03-10",
        "date_parsing": "a date such as 2025-03-10",
        "date_from_datetime_inexact": "a date such as 2025-03-10",
        "datetime_type": "a date-time such as 2025-03-10T08:00",
        "datetime_parsing": "a date-time such as 2025-03-10T08:00",
        "datetime_from_date_parsing": "a date-time such as 2025-03-10T08:00",
    }
    if kind in phrases:
        return phrases[kind]
    bounds = {
        "greater_than": ">",
        "greater_than_equal": ">=",
        "less_than": "<",
        "less_than_equal": "<=",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        if isinstance(limit, float) and limit == int(limit):
            limit = int(limit)
        return f"a value {bounds[kind]} {limit}"
    if kind == "too_short":
        return f"at least {items(ctx.get('min_length'))}"
    if kind == "too_long":
        return f"at most {items(ctx.get('max_length'))}"
    if kind == "literal_error":
        expected = str(ctx.get("expected"))
        return expected if "," not in expected and " or " not in expected else f"one of {expected}"
    if kind == "string_pattern_mismatch":
        return PATTERNS.get(str(ctx.get("pattern")), f"text matching {ctx.get('pattern')}")
    return None


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    """(True, the value at ``part``) when ``node`` has that key or index, else (False, None)."""
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None


def _child_at(data: Any, path: Path) -> Any:
    node = data
    for part in path:
        node = _child(node, part)[1]
    return node


def _strip_union_tags(loc: Sequence[str | int], data: Any) -> tuple[Path, bool]:
    """The path of ``loc`` in ``data``; pydantic adds union member names that are not keys."""
    path: list[str | int] = []
    node = data
    skipped = False
    for part in loc:
        found, child = _child(node, part)
        if found:
            path.append(part)
            node = child
        else:
            skipped = True
    return tuple(path), skipped


def _unwrap(tp: Any) -> list[Any]:
    """Concrete types inside Annotated / Optional / unions."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(tp) for t in _unwrap(arg)]
    return [tp]


def model_at(root: type[BaseModel], path: Path, data: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` of ``data``."""
    candidates: list[Any] = [root]
    node = data
    for part in path:
        nxt: list[Any] = []
        for tp in (t for c in candidates for t in _unwrap(c)):
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if isinstance(part, str) and part in tp.model_fields:
                    nxt.append(tp.model_fields[part].annotation)
            elif origin in (list, tuple) and isinstance(part, int):
                nxt.append(typing.get_args(tp)[0])
            elif origin is dict:
                nxt.append(typing.get_args(tp)[1])
        candidates = nxt
        node = _child(node, part)[1]
    models = [
        t
        for c in candidates
        for t in _unwrap(c)
        if isinstance(t, type) and issubclass(t, BaseModel)
    ]
    if len(models) > 1 and isinstance(node, Mapping):  # a discriminated union: pick by kind
        for model in models:
            kind = model.model_fields.get("kind")
            if kind is not None and node.get("kind") in typing.get_args(kind.annotation):
                return model
    return models[0] if models else None


def problems_from(
    exc: ValidationError, root: type[BaseModel], data: Any, origins: Origins, default_file: str
) -> list[Problem]:
    """pydantic errors -> located problems; the errors of one union value become one line."""
    grouped: dict[Path, list[Mapping[str, Any]]] = {}
    order: list[tuple[Path, str]] = []
    problems: list[Problem] = []
    missing: list[tuple[Path, Problem]] = []
    suggested: set[Path] = set()  # keys a misspelling already points at
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        path, skipped = _strip_union_tags(loc, data)
        kind = err["type"]
        if kind in ("missing", "extra_forbidden"):
            key = loc[-1]
            shown = (*path, key) if not path or path[-1] != key else path
            file, line = locate(origins, tuple(shown), default_file)
            if kind == "missing":
                missing.append(
                    (tuple(shown), Problem(file, line, dotted(shown), "required key is missing"))
                )
                continue
            parent = path[:-1] if path and path[-1] == key else path
            model = model_at(root, parent, data)
            fields = list(model.model_fields) if model else []
            close = closest(key, fields)
            if close:
                suggested.add((*parent, close))
            message = "unknown key" + (f"; did you mean {close!r}?" if close else "")
            problems.append(Problem(file, line, dotted(shown), message))
            continue
        if loc and loc[-1] == "[key]":  # a bad key of a mapping (e.g. an unknown channel)
            key = path[-1] if path else loc[-2]
            file, line = locate(origins, path, default_file)
            expected = err.get("ctx", {}).get("expected")
            choices = [c.strip(" '") for c in str(expected).replace(" or ", ",").split(",")]
            if err["type"] == "string_pattern_mismatch" and path[:1] == ("thresholds",):
                from scenarios.model import THRESHOLD_METRICS

                choices = list(THRESHOLD_METRICS)
                message = (
                    f"unknown metric{_suggest(key, choices)} (any latency: "
                    "e2e_latency_<p>_seconds or delivery_latency_<p>_seconds, <p> p1 .. p99, "
                    f"p99_9, p99_99, max or mean; known: {', '.join(choices)})"
                )
            elif expected is not None:
                message = f"unknown key{_suggest(key, choices)} (expected one of {expected})"
            else:
                message = f"bad key: expected {_expected(err)}, got {_got(key)}"
            problems.append(Problem(file, line, dotted(path), message))
            continue
        if kind == "union_tag_invalid":
            ctx = err.get("ctx") or {}
            tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            tag_path = (*path, ctx.get("discriminator", "kind").strip("'"))
            file, line = locate(origins, tag_path, default_file)
            problems.append(
                Problem(
                    file,
                    line,
                    dotted(tag_path),
                    f"unknown {'typology' if 'anomalies' in path else 'kind'} "
                    f"{ctx.get('tag')!r}{_suggest(ctx.get('tag'), tags)} "
                    f"(expected one of {ctx.get('expected_tags')})",
                )
            )
            continue
        if kind == "union_tag_not_found":
            node = _child_at(data, path)
            typo = [k for k in node if closest(k, ["kind"])] if isinstance(node, Mapping) else []
            if typo:
                file, line = locate(origins, (*path, typo[0]), default_file)
                problems.append(
                    Problem(
                        file, line, dotted((*path, typo[0])), "unknown key; did you mean 'kind'?"
                    )
                )
            else:
                file, line = locate(origins, path, default_file)
                problems.append(
                    Problem(file, line, dotted((*path, "kind")), "required key is missing")
                )
            continue
        if skipped and _expected(err) is not None:
            if path not in grouped:
                order.append((path, ""))
            grouped.setdefault(path, []).append(err)
            continue
        file, line = locate(origins, path, default_file)
        expected = _expected(err)
        if expected is not None:
            message = f"expected {expected}, got {_got(err.get('input'))}"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        problems.append(Problem(file, line, dotted(path), message))
    problems += [p for shown, p in missing if shown not in suggested]
    for path, _ in order:
        errs = grouped[path]
        phrases = list(dict.fromkeys(p for p in (_expected(e) for e in errs) if p))
        file, line = locate(origins, path, default_file)
        hint = ""
        if "kafka_config" in path and isinstance(errs[0].get("input"), Mapping):
            hint = " (a setting with dots goes in brackets: kafka_config[linger.ms]=5)"
        problems.append(
            Problem(
                file,
                line,
                dotted(path),
                f"expected {' or '.join(phrases)}, got {_got(errs[0].get('input'))}{hint}",
            )
        )
    return sorted(problems, key=lambda p: (p.file, p.line or 0))
