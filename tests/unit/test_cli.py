"""The CLI as a user sees it: help everywhere, one-line errors with suggestions, exit codes."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from bankstream.cli import build_parser, main
from tests.conftest import ROOT, run_cli


def all_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from all_commands(sub, (*prefix, name))


COMMANDS = list(all_commands(build_parser()))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "bankstream")
def test_every_command_has_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bankstream")
    if command:
        parent = build_parser()
        for word in command:
            sub = next(
                a for a in parent._actions if isinstance(a, argparse._SubParsersAction)
            ).choices[word]
            parent = sub
        assert parent.description or any(
            a.help for a in parent._actions if isinstance(a, argparse._SubParsersAction)
        ), "command without a description"


def test_every_command_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for command in COMMANDS:
        if command:
            assert f"bankstream {' '.join(command)}" in readme, command


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["stak"], "unknown choice 'stak'; did you mean 'stack'?"),
        (["stack", "stauts"], "unknown choice 'stauts'; did you mean 'status'?"),
        (["stack", "up", "--durabel"], "--durabel (did you mean --durable?)"),
        # another command's flag is not suggested as itself
        (
            ["scenarios", "validate", "--set", "seed=3", "x.yaml"],
            "--set (an option of other commands, not of this one)",
        ),
        (
            ["generate", "retail-day", "--config", "x.toml"],
            "--config (an option of bankstream itself: put it before the command)",
        ),
        (
            ["stack", "up", "--timeout", "soon"],
            "argument --timeout: expected a duration such as 30s",
        ),
        (
            ["run", "x", "--drain-timeout", "0"],
            "--drain-timeout: expected a duration longer than 0s",
        ),
    ],
)
def test_mistakes_get_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert expected in err
    assert len(err.strip().splitlines()) == 1


def test_bad_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]):
    assert main(["sink", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "bankstream: error: --batch-size must be between 1 and 100,000, got 0"
    )


def test_bad_setting_is_one_line_and_exit_2():
    done = run_cli("stack", "status", env={"BANKSTREAM_KAFKA_BOOTSTRAP": "nohost"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "bankstream: error: setting BANKSTREAM_KAFKA_BOOTSTRAP: expected "
        "host:port[,host:port...], got 'nohost'"
    ]


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0
    assert re.fullmatch(r"bankstream \d+\.\d+\.\d+\n", done.stdout)


def test_makefile_has_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    first = readme.split("\n## ", 2)[1]
    commands = re.findall(r"^(make [a-z-]+)$", first, flags=re.M)
    assert len(commands) == 2, first
    makefile = Path(ROOT / "Makefile").read_text()
    for command in commands:
        assert re.search(rf"^{command.split()[1]}:", makefile, flags=re.M), command
