"""Reading scenario files: YAML with line numbers, ``extends`` chains, ``--set`` overrides.

Precedence: ``--set`` on the command line > ``BANKSTREAM_SCENARIO_SET`` in the environment > the
file > the file it extends (recursively) > the model's defaults. Every problem is collected and
reported at once, each as ``FILE:LINE: path.to.key: what is wrong``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from scenarios.errors import Problem, ScenarioError, dotted, items, problems_from
from scenarios.model import Scenario

ENV_OVERRIDES = "BANKSTREAM_SCENARIO_SET"
KeyPath = tuple[str | int, ...]
# a command's own flag applied to the scenario: the key, its typed value, the flag (blamed for a
# problem and shown among the overrides)
Flag = tuple[KeyPath, Any, str]


def bundled_dir() -> Path:
    return Path(str(resources.files("scenarios") / "bundled"))


def bundled_names() -> list[str]:
    return sorted(p.stem for p in bundled_dir().glob("*.yaml"))


@dataclass
class Document:
    """One YAML file: its data and the line of every key in it."""

    display: str
    path: Path
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadedScenario:
    scenario: Scenario
    chain: list[str]  # the files merged, the scenario's own file first
    overrides: list[str]
    sources: tuple[Path, ...] = ()  # those files' paths, the scenario's own first

    @property
    def digest(self) -> str:
        """sha256 of the resolved scenario: the same digest means the same test."""
        blob = orjson.dumps(self.scenario.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()


def _display(path: Path) -> str:
    try:
        inside = path.resolve().relative_to(bundled_dir().resolve())
        return f"<bundled>/{inside}"
    except ValueError:
        return str(path)


# What a scenario file may hold: checked before anything is built from it, so a hostile file
# (a billion-laughs alias bomb, a huge file, deep nesting, a number of 5,000 digits) is a located
# error in well under a second, never a hang, a traceback or gigabytes of memory.
MAX_FILE_BYTES = 256 * 1024
MAX_NODES = 50_000  # values in the document, an alias counted each time it is used
MAX_DEPTH = 48  # mappings and lists inside each other
MAX_SCALAR = 4_096  # characters of one value
MAX_DIGITS = 30  # digits of one number
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def _index(
    root: yaml.Node,
    lines: dict[KeyPath, int],
    problems: list[Problem],
    display: str,
) -> None:
    """The line of each key, and the keys that are not text or given twice. A node reached
    again through an alias is not walked again (its keys keep the lines of their first use)."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *anchor` merges keys in; they are not duplicates
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag != "tag:yaml.org,2002:str"
                ):
                    shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "..."
                    problems.append(
                        Problem(
                            display, line, dotted(path), f"key {shown!r} must be text (quote it)"
                        )
                    )
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                if key in first:
                    problems.append(
                        Problem(
                            display,
                            line,
                            dotted((*path, key)),
                            f"duplicate key (first at line {first[key]})",
                        )
                    )
                first.setdefault(key, line)
                lines[(*path, key)] = line
                stack.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))


def _nesting(text: str, display: str) -> Problem | None:
    """Mappings and lists nested deeper than MAX_DEPTH (found from the parser's events, which
    need no recursion: the composer that builds nodes does)."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else None
                message = f"nested deeper than {MAX_DEPTH} levels of mappings and lists"
                return Problem(display, line, "", message)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
    return None


def _bounds(root: yaml.Node, display: str, loader: yaml.SafeLoader) -> list[Problem]:
    """Values too many (aliases expanded), too long, numbers of too many digits, dates that do
    not exist: each where it is written."""
    problems: list[Problem] = []
    sizes: dict[int, int] = {}  # node -> values under it, aliases expanded
    order: list[yaml.Node] = []
    stack: list[yaml.Node] = [root]
    while stack:  # every node once, parents before children
        node = stack.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = 0
        order.append(node)
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack += [key_node, value_node]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    for node in reversed(order):  # children before parents
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_NODES + 1)
        if isinstance(node, yaml.ScalarNode):
            problem = _scalar(node, display, loader)
            if problem is not None:
                problems.append(problem)
    if sizes[id(root)] > MAX_NODES:
        message = (
            f"more than {MAX_NODES:,} values (aliases counted each time they are used): "
            "a scenario is far smaller; is this an alias bomb?"
        )
        problems.insert(0, Problem(display, root.start_mark.line + 1, "", message))
    return problems[:20]


def _scalar(node: yaml.ScalarNode, display: str, loader: yaml.SafeLoader) -> Problem | None:
    line = node.start_mark.line + 1
    value = str(node.value)
    if len(value) > MAX_SCALAR:
        return Problem(
            display, line, "", f"a value of {len(value):,} characters (at most {MAX_SCALAR:,})"
        )
    if node.tag in (INT_TAG, FLOAT_TAG) and sum(c.isdigit() for c in value) > MAX_DIGITS:
        return Problem(
            display, line, "", f"a number of more than {MAX_DIGITS} digits: {value[:20]}..."
        )
    if node.tag in (INT_TAG, FLOAT_TAG, TIMESTAMP_TAG):
        try:
            loader.construct_object(node)
        except (ValueError, OverflowError, TypeError) as exc:
            kind = "date/time" if node.tag == TIMESTAMP_TAG else "number"
            return Problem(display, line, "", f"{value!r} is not a valid {kind}: {exc}")
    return None


def parse_yaml(text: str, display: str) -> tuple[yaml.Node | None, Any, list[Problem]]:
    """(the root node, the data, problems) of one YAML document, within the bounds above."""
    loader: yaml.SafeLoader | None = None
    try:
        deep = _nesting(text, display)
        if deep is not None:
            return None, None, [deep]
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is not None:
            bounded = _bounds(node, display, loader)
            if bounded:
                return node, None, bounded
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as fast:
        exc = _clearer(text, fast)
        mark = getattr(exc, "problem_mark", None)
        where = mark.line + 1 if mark is not None else None
        if isinstance(exc, yaml.reader.ReaderError):
            where = text[: exc.position].count("\n") + 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "nesting depth" in str(problem):  # libyaml's own limit, before ours
            problem = f"nested deeper than {MAX_DEPTH} levels of mappings and lists"
            return None, None, [Problem(display, where, "", problem)]
        return None, None, [Problem(display, where, "", f"invalid YAML: {problem}")]
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:  # what no check caught
        return None, None, [Problem(display, None, "", f"cannot be read as YAML: {exc}")]
    finally:
        if loader is not None:
            loader.dispose()
    return node, data, []


def _clearer(text: str, exc: yaml.YAMLError) -> yaml.YAMLError:
    """The pure-Python parser's account of a syntax error (it says what it expected and what it
    found; libyaml's is terser). Only on the error path, of a file already within bounds."""
    if _Loader is yaml.SafeLoader:
        return exc
    try:
        loader = yaml.SafeLoader(text)  # its reader checks the characters here
        try:
            loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as slow:
        return slow
    except RecursionError:
        return exc
    return exc


def read_document(path: Path) -> tuple[Document | None, list[Problem]]:
    display = _display(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None, [Problem(display, None, "", "no such file")]
    except IsADirectoryError:
        return None, [Problem(display, None, "", "is a folder: give a scenario YAML file")]
    except OSError as exc:
        return None, [Problem(display, None, "", f"cannot read the file ({exc.strerror})")]
    if len(raw) > MAX_FILE_BYTES:
        message = (
            f"larger than {MAX_FILE_BYTES // 1024} KiB: a scenario file is a few KiB "
            "(is this the right file?)"
        )
        return None, [Problem(display, None, "", message)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [Problem(display, line, "", "not UTF-8 text: save the file as UTF-8")]
    node, data, problems = parse_yaml(text, display)
    if problems:
        return None, problems
    if node is None or data is None:
        return None, [
            Problem(
                display,
                1,
                "",
                "empty file (expected a mapping with at least name, population and load)",
            )
        ]
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"{type(data).__name__} {data!r}"
        return None, [
            Problem(
                display,
                node.start_mark.line + 1,
                "",
                f"expected a mapping of scenario keys at the top, got {kind}",
            )
        ]
    found: list[Problem] = []
    lines: dict[KeyPath, int] = {}
    _index(node, lines, found, display)
    return Document(display, path, data, lines), found


def _is_file(path: Path) -> bool:
    """Whether ``path`` is a file; a name the system refuses (too long, ...) is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def find_scenario(ref: str, near: Path | None = None) -> Path | None:
    """A bundled name, or a path (relative to ``near``'s folder when given)."""
    looks_like_path = "/" in ref or ref.endswith((".yaml", ".yml"))
    if looks_like_path:
        candidate = Path(ref) if near is None or Path(ref).is_absolute() else near.parent / ref
        return candidate if _is_file(candidate) else None
    if near is not None:
        sibling = near.parent / f"{ref}.yaml"
        if _is_file(sibling):
            return sibling
    bundled = bundled_dir() / f"{ref}.yaml"
    if _is_file(bundled):
        return bundled
    plain = Path(ref)
    return plain if near is None and _is_file(plain) else None


def _merge(base: Any, over: Any, child: bool) -> Any:
    """Mappings merge key by key (recursively); anything else in ``over`` replaces ``base``.

    In a ``child`` document (one that extends another), null removes the key: it is back to its
    default.
    """
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            if value is None and child:
                merged.pop(key, None)
            elif key in base:
                merged[key] = _merge(base[key], value, child)
            else:
                merged[key] = _drop_nulls(value) if child else value
        return merged
    return _drop_nulls(over) if child else over


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _replaced(data: Any, path: KeyPath) -> bool:
    """True when ``data`` (a child document) sets ``path`` or a non-mapping above it."""
    node = data
    for part in path:
        if not isinstance(node, dict):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _chain(path: Path) -> tuple[list[Document], list[Problem], bool]:
    """The document and its ``extends`` ancestors, the document first; the problems found,
    and whether they stop the reading (a duplicate key does not: the rest is checked too)."""
    docs: list[Document] = []
    seen: list[Path] = []
    soft: list[Problem] = []
    current: Path | None = path
    while current is not None:
        real = current.resolve()
        if real in seen:
            names = " -> ".join(_display(p) for p in [*seen, real])
            return docs, [_extends_problem(docs[-1], f"extends cycle: {names}")], True
        seen.append(real)
        doc, problems = read_document(current)
        if doc is None:
            return docs, problems, True
        soft += problems
        docs.append(doc)
        parent = doc.data.get("extends")
        if parent is None:
            break
        if not isinstance(parent, str) or not parent.strip():
            message = f"expected a scenario name or path, got {parent!r}"
            return docs, [_extends_problem(doc, message)], True
        current = find_scenario(parent, near=current)
        if current is None:
            close = difflib.get_close_matches(parent, bundled_names(), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            message = (
                f"no scenario {parent!r}{hint} (bundled: {', '.join(bundled_names())}; or give a "
                "path relative to this file)"
            )
            return docs, [_extends_problem(doc, message)], True
    return docs, soft, False


def _extends_problem(doc: Document, message: str) -> Problem:
    """A problem with the ``extends`` key of ``doc``."""
    return Problem(doc.display, doc.lines.get(("extends",)), "extends", message)


KEY_PART = re.compile(r"\[([^\[\]]+)\]|([A-Za-z0-9_\-]+)")


def parse_assignment(text: str, source: str) -> tuple[KeyPath, Any]:
    """``a.b.0.c=value`` -> (("a", "b", 0, "c"), value parsed as YAML).

    A key with dots (a librdkafka setting) goes in brackets: ``delivery.kafka_config[linger.ms]=5``.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts: list[str | int] = []
    position = 0
    while sep and position < len(key):
        match = KEY_PART.match(key, position)
        if match is None:
            break
        quoted, plain = match.groups()
        parts.append(quoted if quoted is not None else int(plain) if plain.isdigit() else plain)
        position = match.end()
        if position < len(key) and key[position] == ".":
            position += 1
    if not sep or not parts or position != len(key) or key.endswith("."):
        message = f"expected path.to.key=value (a key with dots in [brackets]), got {text!r}"
        raise ScenarioError([Problem(source, None, "", message)])
    if not raw.strip():
        return tuple(parts), None
    if len(raw) > MAX_SCALAR:
        message = f"{dotted(parts)}: a value of {len(raw):,} characters (at most {MAX_SCALAR:,})"
        raise ScenarioError([Problem(source, None, "", message)])
    _, value, problems = parse_yaml(raw, source)
    if problems:
        if any("invalid YAML" in p.message for p in problems):
            return tuple(parts), raw  # not YAML: the text as it is
        located = [Problem(source, None, dotted(parts), p.message) for p in problems]
        raise ScenarioError(located)
    return tuple(parts), value


def _assign(data: dict[str, Any], path: KeyPath, value: Any, source: str) -> Problem | None:
    node: Any = data
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), dict | list):
                    node[part] = {}
                node = node[part]
        elif isinstance(node, list) and not isinstance(part, int):
            return Problem(
                source,
                None,
                dotted(path[: depth + 1]),
                f"expected a list index (0, 1, ...) here, got {part!r}",
            )
        elif isinstance(node, list) and isinstance(part, int):
            if part >= len(node):
                return Problem(
                    source,
                    None,
                    dotted(path[: depth + 1]),
                    f"index out of range (the list has {items(len(node))})",
                )
            if last:
                node[part] = value
            else:
                node = node[part]
        else:
            return Problem(
                source,
                None,
                dotted(path[: depth + 1]),
                "cannot set a key inside a value that is not a mapping or a list",
            )
    return None


def env_overrides(environ: Mapping[str, str] | None = None) -> list[str]:
    text = (environ if environ is not None else os.environ).get(ENV_OVERRIDES, "")
    return [item.strip() for item in re.split(r"[;\n]", text) if item.strip()]


def load(
    ref: str,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    flags: Sequence[Flag] = (),
    fit: Callable[[Any], Sequence[Flag]] | None = None,
) -> LoadedScenario:
    """The validated scenario ``ref`` (bundled name or path) with its overrides applied: the
    environment's, then ``--set``'s (text), then ``flags`` (typed values a command took from
    its own flags), then what ``fit`` makes of the scenario's load before the flags (a
    ``scenarios.model.Load``: e.g. a warm-up that fits the run the flags ask for). The file is
    read and the scenario validated once."""
    path = find_scenario(ref)
    if path is None:
        close = difflib.get_close_matches(ref, bundled_names(), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ScenarioError(
            [
                Problem(
                    ref,
                    None,
                    "",
                    f"no such scenario or file{hint} (bundled: {', '.join(bundled_names())})",
                )
            ]
        )
    docs, problems, fatal = _chain(path)
    if fatal:
        raise ScenarioError(problems)
    data: dict[str, Any] = {}
    origins: dict[KeyPath, tuple[str, int | None]] = {}
    for depth, doc in enumerate(reversed(docs)):  # the root ancestor first, the file last
        origins = {k: v for k, v in origins.items() if not _replaced(doc.data, k)}
        origins.update({k: (doc.display, line) for k, line in doc.lines.items()})
        data = _merge(data, doc.data, child=depth > 0)
    top = docs[0]
    if "name" not in top.data:
        problems.append(
            Problem(
                top.display, 1, "name", "required key is missing (every scenario file names itself)"
            )
        )
    data.pop("extends", None)
    assignments = [(a, ENV_OVERRIDES) for a in env_overrides(environ)]
    assignments += [(a, "--set") for a in overrides]
    # `--set thresholds.X=...` on a scenario without thresholds changes that one threshold of
    # the defaults; it does not make X the only one (a whole `--set thresholds={...}` does)
    one_threshold = "thresholds" not in data
    for text, source in assignments:
        try:
            key_path, value = parse_assignment(text, source)
        except ScenarioError as exc:
            problems += exc.problems
            continue
        problem = _assign(data, key_path, value, source)
        if problem is not None:
            problems.append(problem)
            continue
        if key_path == ("thresholds",):
            one_threshold = False
        origins = {k: v for k, v in origins.items() if k[: len(key_path)] != key_path}
        origins[key_path] = (source, None)
    typed = list(flags)
    if fit is not None:
        typed += fit(_load_section(data))
    for key_path, value, source in typed:
        problem = _assign(data, key_path, value, source)
        if problem is not None:
            problems.append(problem)
            continue
        assignments.append((f"{dotted(key_path)}={_shown(value)}", source))
        origins = {k: v for k, v in origins.items() if k[: len(key_path)] != key_path}
        origins[key_path] = (source, None)
    if isinstance(data.get("thresholds"), dict):
        if one_threshold:
            data["thresholds"] = _with_default_thresholds(data)
        # a threshold set to null is removed (as in a scenario that extends another)
        data["thresholds"] = {m: v for m, v in data["thresholds"].items() if v is not None}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems += problems_from(exc, Scenario, data, origins, top.display)
    if problems:
        raise ScenarioError(problems)
    return LoadedScenario(
        scenario,
        [d.display for d in docs],
        [f"{text} ({source})" for text, source in assignments],
        tuple(d.path for d in docs),
    )


def _load_section(data: Mapping[str, Any]) -> Any:
    """The scenario's load as its file and ``--set`` give it (None: not valid by itself; the
    whole scenario's validation then says why)."""
    from scenarios.model import Load

    try:
        return Load.model_validate(data.get("load") or {})
    except ValidationError:
        return None


def _shown(value: Any) -> str:
    """A typed flag's value as an override reads (``500``, ``null``, ``[...]``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value)


def _with_default_thresholds(data: dict[str, Any]) -> dict[str, Any]:
    """The default thresholds (those that fit the load) with the overridden ones over them."""
    from scenarios.model import default_thresholds

    load = data.get("load")
    defaults = {
        metric: [c.text(metric) for c in conditions]
        for metric, conditions in default_thresholds().items()
        if not (
            metric == "produce_rate_ratio" and isinstance(load, dict) and load.get("rate") == "max"
        )
    }
    return {**defaults, **data["thresholds"]}


def validate_files(paths: Iterable[str]) -> tuple[list[LoadedScenario], list[Problem]]:
    """Every file checked; all problems of all files, in file order."""
    loaded: list[LoadedScenario] = []
    problems: list[Problem] = []
    for ref in paths:
        path = Path(ref)
        if not _is_file(path):
            problems.append(Problem(ref, None, "", "no such file"))
            continue
        try:
            loaded.append(load(str(path), environ={}))
        except ScenarioError as exc:
            problems += exc.problems
    return loaded, problems


class _Dumper(yaml.SafeDumper):
    """Multi-line text as a literal block, like a person writes it."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    if any(c in value for c in "\r\x85\u2028\u2029") or not value.replace("\n", "").isprintable():
        style = '"'  # line breaks YAML reads differently, control characters: escape them
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump_yaml(scenario: Scenario, mask_secrets: bool = True) -> str:
    """The resolved scenario as YAML (every key, defaults included), loadable again. Client
    settings that hold a secret (sasl.password, ...) show as ``***`` unless ``mask_secrets`` is
    false."""
    from bankstream.settings import secret_key

    data = scenario.model_dump(mode="json", exclude={"extends"})
    config = (data.get("delivery") or {}).get("kafka_config") or {}
    if mask_secrets:
        for key in config:
            if secret_key(str(key)):
                config[key] = "***"
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
