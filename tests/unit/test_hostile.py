"""Hostile input: each case ends in one clear line and its exit code (2: input to correct, 1: the
world failed), in bounded memory (the CLI runs under a 1.5 GiB address-space limit), never a
traceback; secrets are never echoed. Then arbitrary text, bytes and flag values (hypothesis)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenarios.errors import ScenarioError
from scenarios.loader import load, parse_assignment, read_document
from tests.conftest import ROOT

BASE = "name: hostile\npopulation: {customers: 100}\nload: {rate: 10, events: 100}\n"
MEMORY = 1536 * 2**20


def _limit() -> None:  # in the child: a runaway allocation fails instead of taking the machine
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """``bankstream ARGS`` in a new process under the memory limit (a timeout guards hangs)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BANKSTREAM_SCENARIO")}
    return subprocess.run(
        [sys.executable, "-m", "bankstream", *args],
        capture_output=True,
        text=True,
        env={**environ, **(env or {})},
        cwd=cwd or ROOT,
        timeout=120,
        preexec_fn=_limit,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess[str], code: int, *said: str) -> str:
    err = done.stderr.strip()
    assert done.returncode == code, (done.returncode, err[-2000:])
    assert "Traceback" not in err and "Warning" not in err, err[-2000:]
    lines = err.splitlines()
    assert len(lines) == 1, err[-2000:]
    assert len(lines[0]) < 400, f"a line of {len(lines[0]):,} characters"
    assert lines[0].isprintable(), repr(lines[0][:200])
    for text in said:
        assert text in lines[0], (text, lines[0])
    return lines[0]


@pytest.fixture
def scenario(tmp_path: Path):
    def write(text: str, name: str = "s.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (BASE + "time: {start: 2025-02-30T00:00:00}\n", ":4: '2025-02-30T00:00:00' is not a valid"),
        (BASE + "seed: " + "9" * 5000 + "\n", ":4: a value of 5,000 characters"),
        (BASE + "seed: " + "9" * 40 + "\n", ":4: a number of more than 30 digits"),
        pytest.param(  # ~3 s: the pure-Python parser's clearer message walks it all
            BASE + "x: " + "[" * 5000 + "]" * 5000 + "\n",
            "nested deeper than",
            marks=pytest.mark.slow,
        ),
        (BASE + "x:\n" + "".join(f"{' ' * (2 * i)}- \n" for i in range(1, 60)), "nested deeper"),
        (BASE + "name: " + "x" * 300_000 + "\n", "larger than 256 KiB"),
        (BASE + "x: [" + ", ".join(["1"] * 60_000) + "]\n", "more than 50,000 values"),
        (BASE + '"a\\x1b[31mb": 1\n', "a\\x1b[31mb: unknown key"),
        (BASE + "seed: '" + "y" * 3000 + "'\n", ":4: seed: "),
    ],
    ids=[
        "30-february",
        "5000-digits",
        "40-digits",
        "flow-nesting",
        "block-nesting",
        "huge-file",
        "huge-list",
        "escape-codes",
        "long-value",
    ],
)
def test_bad_scenario_files_are_one_located_line(scenario, text: str, said: str):
    path = scenario(text)
    one_line(cli("scenarios", "validate", str(path)), 2, said)
    if "valid" in said or "deeper" in said:  # generate reads scenarios the same way
        one_line(cli("generate", str(path), "-o", os.devnull), 2, said)


def test_an_alias_bomb_is_refused_without_expanding_it(scenario):
    lines = [BASE.strip(), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    path = scenario("\n".join(lines) + "\n")
    one_line(cli("scenarios", "show", str(path)), 2, "alias")


def test_a_gigabyte_file_is_not_read_whole(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(2**30)  # sparse: a gigabyte that costs nothing on disk
    one_line(cli("scenarios", "validate", str(path)), 2, "larger than 256 KiB")


def test_impossible_date_through_set_is_located(scenario):
    path = scenario(BASE)
    one_line(
        cli("scenarios", "show", str(path), "--set", "time.start=2025-02-30T00:00:00"),
        2,
        "--set: time.start: '2025-02-30T00:00:00' is not a valid date/time",
    )


def test_events_of_400_digits_is_one_short_line(scenario):
    path = scenario(BASE)
    one_line(cli("generate", str(path), "--events", "9" * 400), 2, "a number of 400 digits")


@pytest.mark.parametrize("device", ["/dev/full", "/proc/version"])
def test_an_output_that_refuses_writes_is_exit_1(scenario, device: str):
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    path = scenario(BASE)
    one_line(cli("generate", str(path), "-o", device), 1, f"cannot write {device}")


def test_output_onto_the_scenario_itself_is_refused(scenario):
    path = scenario(BASE)
    one_line(cli("generate", str(path), "-o", str(path)), 2, "is the scenario file")
    assert path.read_text() == BASE


def test_misspelled_variables_are_errors_for_every_command(scenario):
    path = scenario(BASE)
    one_line(
        cli("scenarios", "show", str(path), env={"BANKSTREAM_SCENARIOS_SET": "seed=3"}),
        2,
        "did you mean BANKSTREAM_SCENARIO_SET?",
    )
    for args in (["generate", str(path), "-o", os.devnull], ["stack", "status"]):
        one_line(cli(*args, env={"BANKSTREAM_FOO": "1"}), 2, "unknown setting BANKSTREAM_FOO")


def test_an_unknown_mongodb_uri_option_is_one_line_without_the_password():
    uri = "mongodb://bank:s3cr3t-pw@127.0.0.1:1/?foo=bar"
    line = one_line(
        cli("stack", "status", env={"BANKSTREAM_MONGO_URI": uri}), 2, "unknown option(s) foo"
    )
    assert "s3cr3t-pw" not in line


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["produce", "retail-day", "--events", "9" * 400], "a number of more than 30 digits"),
        (["produce", "retail-day", "--shard", ""], "--shard expects I/N"),
        (["produce", "retail-day", "--run-id", ""], "is not a run id"),
        (["run", "retail-day", "--run-id", "../../etc"], "is not a run id"),
        (["generate", "retail-day", "--run-id", "\x1b[31mred"], "'\\x1b[31mred' is not a run id"),
        (["run", "retail-day", "--results", "9" * 400], "cannot write there (File name too long)"),
        (["produce", "retail-day", "--results", "/proc/version"], "cannot write there"),
        (["sink", "--scenario", "9" * 400], "(400 characters): no such scenario"),
        (["run", "retail-day", "--rate", "\x1b[31mx"], "got \\x1b[31mx"),
        (["run", "retail-day", "--stages", "9" * 400 + ":10"], "got '999999"),
        (["run", "retail-day", "--topic", ""], "'' is not a Kafka topic name"),
        (["sink", "--topic", "a\x1bb"], "'a\\x1bb' is not a Kafka topic name"),
        (["produce", "retail-day", "--topic", "x" * 250], "is not a Kafka topic name"),
        (["sink", "--dead-letter-topic", ""], "'' is not a Kafka topic name"),
    ],
    ids=[
        "events-400-digits",
        "empty-shard",
        "empty-run-id",
        "run-id-path",
        "run-id-escape",
        "results-name-too-long",
        "results-not-a-folder",
        "scenario-name-too-long",
        "rate-escape-codes",
        "stages-400-digits",
        "empty-topic",
        "topic-escape-codes",
        "topic-too-long",
        "empty-dead-letter-topic",
    ],
)
def test_bad_flags_of_every_command_are_one_line_and_exit_2(args: list[str], said: str):
    one_line(cli(*args), 2, said)


def test_scenario_secrets_are_masked_in_show(scenario):
    path = scenario(
        BASE + "delivery:\n  kafka_config: {sasl.password: hunter2x, sasl.username: bob, "
        '"sasl.oauthbearer.client.secret": tok3n}\n'
    )
    done = cli("scenarios", "show", str(path))
    assert done.returncode == 0, done.stderr
    assert "hunter2x" not in done.stdout and "tok3n" not in done.stdout
    assert "sasl.username: bob" in done.stdout


# ---------------------------------------------------------------------- any input at all


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400).map(lambda b: b.decode("latin-1"))))
def test_any_text_is_a_model_or_located_problems(tmp_path: Path, text: str):
    path = tmp_path / "any.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    doc, problems = read_document(path)
    assert doc is not None or problems
    for problem in problems:
        assert str(problem).isprintable()
    try:
        load(str(path), environ={})
    except ScenarioError as exc:
        assert exc.problems and all(str(p).isprintable() for p in exc.problems)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_set_value_is_a_value_or_a_problem(value: str):
    try:
        parse_assignment(f"time.start={value}", "--set")
    except ScenarioError as exc:
        assert exc.problems


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["--events", "--seed", "--cells", "--rate", "--duration", "--processes"]),
    st.text(max_size=60),
)
def test_any_flag_value_parses_or_is_refused_in_one_line(flag: str, value: str):
    from bankstream.cli import parse

    command = "generate" if flag in ("--events", "--seed", "--cells") else "produce"
    try:
        parse([command, "retail-day", flag, value])
    except SystemExit as exit_:
        assert exit_.code == 2


# ---------------------------------------------------------------------- the worst kept

CORPUS = Path(__file__).with_name("hostile_corpus.jsonl.gz")


def corpus() -> list[str]:
    """The texts the loader handled slowest or largest in a hypothesis search that aimed for
    them (``python -m benchmarks.hostile_corpus``)."""
    import gzip
    import json

    with gzip.open(CORPUS, "rt", encoding="utf-8", errors="surrogateescape") as f:
        return [json.loads(line)["text"] for line in f]


@pytest.mark.slow
def test_the_worst_cases_found_are_models_or_located_lines(tmp_path: Path):
    texts = corpus()
    assert len(texts) >= 12
    paths = []
    for i, text in enumerate(texts):
        path = tmp_path / f"worst-{i:02d}.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        paths.append(str(path))
        try:
            load(str(path), environ={})
        except ScenarioError as exc:
            assert exc.problems and all(str(p).isprintable() for p in exc.problems)
    done = cli("scenarios", "validate", *paths)  # all at once, under the memory limit
    assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr[-2000:]
    for line in done.stderr.splitlines():
        assert line.startswith(str(tmp_path)) and line.isprintable() and len(line) < 400, line
