"""`bankstream scenarios list|show|validate|schema`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from bankstream.commands import add_overrides, command_group, summary
from scenarios.errors import ScenarioError
from scenarios.loader import ENV_OVERRIDES, bundled_names, dump_yaml, load, validate_files
from scenarios.model import Scenario


def register(commands: Any) -> None:
    add = command_group(
        commands,
        "scenarios",
        summary("scenarios"),
        "Scenarios describe a bank (customers, merchants, transaction mix, time, fraud) and a "
        "load test (rate, delivery, sink, pass/fail thresholds). Bundled ones are used by name; "
        "your own by path.",
    )

    p = add("list", "the bundled scenarios, one line each")
    p.add_argument("--json", action="store_true", help="one JSON object per scenario")
    p.set_defaults(run=run_list)

    p = add(
        "show",
        "a scenario fully resolved (extends and overrides applied, defaults filled in), as YAML",
        f"Overrides: --set path.to.key=value (repeatable), and {ENV_OVERRIDES}='a.b=1;c=2' in "
        "the environment (--set wins).",
    )
    p.add_argument("scenario", metavar="NAME|FILE", help="bundled name or path to a YAML file")
    add_overrides(p)
    p.set_defaults(run=run_show)

    p = add(
        "validate",
        "check scenario files and report every problem at once",
        "One line per problem: FILE:LINE: path.to.key: what is wrong. Exit code 2 if any.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="scenario YAML files")
    p.set_defaults(run=run_validate)

    p = add("schema", "the JSON Schema of scenario files (for editors and CI)")
    p.set_defaults(run=run_schema)


def run_list(args: argparse.Namespace) -> int:
    rows = []
    for name in bundled_names():
        loaded = load(name, environ={})
        rows.append((name, loaded.scenario.first_line))
    if args.json:
        for name, line in rows:
            print(json.dumps({"name": name, "description": line}, ensure_ascii=False))
        return 0
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("description")
    for name, line in rows:
        table.add_row(name, line)
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 200
    console.print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    loaded = load(args.scenario, overrides=args.overrides)
    header = [f"# {args.scenario} resolved from {' <- '.join(loaded.chain)}"]
    if loaded.overrides:
        header.append(f"# overrides: {', '.join(loaded.overrides)}")
    header.append(f"# digest: sha256:{loaded.digest}")
    sys.stdout.write("\n".join(header) + "\n" + dump_yaml(loaded.scenario))
    return 0


def run_validate(args: argparse.Namespace) -> int:
    loaded, problems = validate_files(args.files)
    for item in loaded:
        print(f"{item.chain[0]}: ok ({item.scenario.name})")
    if problems:
        raise ScenarioError(problems)
    return 0


def run_schema(args: argparse.Namespace) -> int:
    print(json.dumps(scenario_schema(), indent=2, ensure_ascii=False))
    return 0


def scenario_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "bankstream scenario"
    # a file that extends another may leave out what its parent gives
    required = schema.pop("required", [])
    schema["if"] = {"not": {"required": ["extends"]}}
    schema["then"] = {"required": required}
    return schema
