"""Requests typed once: what a command's flags ask for, read back equal from the words a child
command is given (`run` starts `produce`; `run --find-max` starts `run` steps)."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bankstream.cli import parse
from bankstream.errors import UsageError
from harness.capacity import step_request
from harness.faults import parse_fault
from harness.request import RunRequest
from loadgen.producer.request import LoadRequest, ProduceRequest, StageRequest
from sink.request import SinkRequest

seconds = st.one_of(
    st.integers(1, 10 * 86400).map(float),
    st.floats(0.001, 86400, allow_nan=False, allow_infinity=False),
)
rates = st.floats(0.001, 1e7, allow_nan=False, allow_infinity=False)
overrides = st.lists(
    st.builds(
        lambda key, value: f"{key}={value}",
        st.sampled_from(["load.warmup", "sink.batch_size", "population.customers", "x[a.b]"]),
        st.text(string.ascii_letters + string.digits + " .:-", max_size=12),
    ),
    max_size=3,
).map(tuple)


@st.composite
def load_requests(draw: st.DrawFn) -> LoadRequest:
    shape = draw(st.sampled_from(["scenario", "rate", "rate+duration", "rate+events", "stages"]))
    fields: dict[str, object] = {
        "scenario": draw(st.sampled_from(["retail-day", "./my scenario.yaml", "soak"])),
        "overrides": draw(overrides),
        "seed": draw(st.none() | st.integers(0, 2**63 - 1)),
    }
    if shape.startswith("rate"):
        fields["rate"] = draw(st.just("max") | rates)
    if shape == "rate+duration":
        fields["duration"] = draw(seconds)
    if shape == "rate+events":
        fields["events"] = draw(st.integers(1, 10**15))
    if shape == "stages":
        fields["stages"] = tuple(
            draw(
                st.lists(
                    st.builds(
                        StageRequest,
                        seconds=seconds,
                        rate=rates,
                        ramp=st.none() | st.sampled_from(["step", "linear"]),
                    ),
                    min_size=1,
                    max_size=4,
                )
            )
        )
    return LoadRequest.model_validate(fields)


@given(load_requests())
@settings(max_examples=150, deadline=None)
def test_a_load_request_reads_back_equal_from_its_words(request: LoadRequest) -> None:
    args = parse(["produce", *request.to_argv()])
    assert LoadRequest.from_args(args) == request


@st.composite
def run_requests(draw: st.DrawFn) -> RunRequest:
    sharded = draw(st.booleans())
    count = draw(st.integers(1, 64))
    faults = draw(
        st.lists(
            st.sampled_from(
                ["kill-sink@20s", "pause-broker@30s:10s", "exec@5s:echo a b", "kill-broker@1m"]
            ),
            max_size=2,
        )
    )
    sink = "bankstream" if sharded else draw(st.sampled_from(["bankstream", "connect", "external"]))
    pipeline: dict[str, object] = {"sink": sink}
    if sink != "bankstream":
        faults = [f for f in faults if not f.startswith("kill-sink")]
        pipeline["target"] = draw(st.none() | st.just("db.coll"))
        pipeline["id_field"] = draw(st.sampled_from(["tx_id", "event.tx_id"]))
    if sink != "external" and not sharded:
        pipeline["backlog"] = draw(st.none() | st.integers(1, 10**6))
    if sink == "external":
        pipeline["event_field"] = draw(st.none() | st.just("event"))
        group = draw(st.sampled_from(["", "group", "wait", "both"]))
        pipeline["group"] = "g" if group in ("group", "both") else None
        pipeline["wait_for_group"] = "g" if group in ("wait", "both") else None
    pipeline["push"] = draw(st.booleans())
    pipeline["push_interval"] = float(draw(st.integers(1, 3600)))
    return RunRequest(
        **pipeline,
        load=draw(load_requests()),
        processes=draw(st.none() | st.integers(1, 256)),
        sink_processes=draw(st.none() | st.integers(1, 256)),
        run_id="r-1" if sharded else draw(st.none() | st.just("run.2")),
        shard=(draw(st.integers(0, count - 1)), count) if sharded else None,
        topic=draw(st.none() | st.just("t.x")),
        fresh=draw(st.booleans()),
        no_stack=draw(st.booleans()),
        no_warm=draw(st.booleans()),
        keep_topic=draw(st.booleans()),
        drain_timeout=draw(st.floats(0.001, 86400, allow_nan=False)),
        verify_limit=draw(st.integers(0, 10**9)),
        results=Path(draw(st.sampled_from(["results", "/tmp/r s"]))),
        faults=tuple(parse_fault(f) for f in faults),
        judge_latency=draw(st.sampled_from(["outside-faults", "whole-run"])),
        output=draw(st.sampled_from(["live", "json", "quiet"])),
        config=draw(st.none() | st.just(Path("b.toml"))),
        verbose=draw(st.integers(0, 2)),
    )


@given(run_requests())
@settings(max_examples=150, deadline=None)
def test_a_run_request_reads_back_equal_from_its_words(request: RunRequest) -> None:
    assert RunRequest.from_args(parse(request.to_argv())) == request


@st.composite
def produce_requests(draw: st.DrawFn) -> ProduceRequest:
    sharded = draw(st.booleans())
    count = draw(st.integers(1, 64))
    return ProduceRequest(
        load=draw(load_requests()),
        processes=draw(st.none() | st.integers(1, 256)),
        cells=None if sharded else draw(st.none() | st.just("0-127")),
        shard=(draw(st.integers(0, count - 1)), count) if sharded else None,
        run_id="r-1" if sharded else draw(st.none() | st.just("run.2")),
        topic=draw(st.none() | st.just("t.x")),
        results=Path(draw(st.sampled_from(["results", "/tmp/r s"]))),
        metrics_port=draw(st.none() | st.integers(0, 65535)),
        metrics_linger=float(draw(st.integers(0, 3600))),
        flush_timeout=draw(st.floats(0.001, 86400, allow_nan=False)),
        push=draw(st.booleans()),
        push_interval=float(draw(st.integers(1, 3600))),
        output=draw(st.sampled_from(["live", "json", "quiet"])),
        config=draw(st.none() | st.just(Path("b.toml"))),
        verbose=draw(st.integers(0, 2)),
    )


@given(produce_requests())
@settings(max_examples=150, deadline=None)
def test_a_produce_request_reads_back_equal_from_its_words(request: ProduceRequest) -> None:
    assert ProduceRequest.from_args(parse(request.to_argv())) == request


@st.composite
def sink_requests(draw: st.DrawFn) -> SinkRequest:
    scenario = draw(st.none() | st.sampled_from(["retail-day", "./my scenario.yaml"]))
    maybe_seconds = st.none() | seconds
    return SinkRequest(
        scenario=scenario,
        overrides=draw(overrides) if scenario is not None else (),
        group=draw(st.sampled_from(["bankstream-sink", "g.1"])),
        topic=draw(st.none() | st.just("t.x")),
        dead_letter_topic=draw(st.none() | st.just("t.dlq")),
        batch_size=draw(st.none() | st.integers(1, 100_000)),
        flush_interval=draw(maybe_seconds),
        processes=draw(st.none() | st.integers(1, 256)),
        until_idle=draw(maybe_seconds),
        store_timeout=draw(seconds),
        lease=draw(st.floats(1, 86400, allow_nan=False)),
        projections=draw(st.booleans()),
        push=draw(st.booleans()),
        push_interval=float(draw(st.integers(1, 3600))),
        metrics_port=draw(st.none() | st.integers(0, 65535)),
        output=draw(st.sampled_from(["live", "json", "quiet"])),
        fault=draw(st.none() | st.just("after-insert")),
        config=draw(st.none() | st.just(Path("b.toml"))),
        verbose=draw(st.integers(0, 2)),
    )


@given(sink_requests())
@settings(max_examples=150, deadline=None)
def test_a_sink_request_reads_back_equal_from_its_words(request: SinkRequest) -> None:
    assert SinkRequest.from_args(parse(request.to_argv())) == request


def test_the_sink_of_a_run_is_the_scenarios_with_the_runs_overrides() -> None:
    args = parse(["run", "retail-day", "--set", "sink.batch_size=700", "--sink-processes", "3"])
    args.verify_limit = 0
    request = RunRequest.from_args(args).sink_request("g", "t")
    assert SinkRequest.from_args(parse(request.to_argv())) == request
    assert request.overrides == ("sink.batch_size=700",)
    assert (request.processes, request.group, request.topic) == (3, "g", "t")
    assert request.output == "json"


def test_the_producer_gets_the_load_as_asked_and_the_sink_the_scenarios_overrides() -> None:
    args = parse(["run", "retail-day", "--rate", "1500", "--duration", "90s", "--seed", "7"])
    args.verify_limit = 0
    request = RunRequest.from_args(args)
    produce = parse(request.producer_argv("r", "t", Path("/tmp/x")))
    again = LoadRequest.from_args(produce)
    assert again == request.load
    assert again.rate == 1500.0 and again.duration == 90.0 and again.seed == 7
    assert (produce.run_id, produce.topic, produce.json) == ("r", "t", True)
    sink = request.sink_argv("g", "t")
    assert sink[sink.index("--group") + 1] == "g" and "--rate" not in sink


def test_a_step_of_the_capacity_search_is_the_search_at_one_rate() -> None:
    args = parse(
        ["run", "retail-day", "--find-max", "--topic", "mine", "--set", "load.warmup=2s"]
        + ["--sink-processes", "3", "--drain-timeout", "45s"]
    )
    request = RunRequest.from_args(args)
    step = step_request(request, 2400.5, 30.0, "s-1", Path("/tmp/steps"))
    back = RunRequest.from_args(parse(step.to_argv()))
    assert back == step
    assert back.load.rate == 2400.5 and back.load.duration == 30.0
    # the step's own warm-up first, so that the user's --set still wins
    assert back.load.overrides == ("load.warmup=7.5s", "load.warmup=2s")
    assert back.topic is None and back.fresh and back.output == "json"
    assert (back.sink_processes, back.drain_timeout) == (3, 45.0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rate", "fast"], "--rate must be a positive number of events per second or max"),
        (["--rate", "inf"], "--rate must be a positive number"),
        (["--events", "1e3"], "--events must be a positive whole number, got 1e3"),
        (["--duration", "2x"], "--duration: expected a duration such as 30s"),
        (["--stages", "2x:100"], "--stages: expected a duration such as 30s, 10m or 1h, got '2x'"),
        (["--stages", "2m"], "--stages: '2m' is not DURATION:RATE[:linear]"),
        (["--seed", "-1"], "--seed must be between 0 and 2^63 - 1, got -1"),
    ],
)
def test_a_flag_that_is_not_what_it_must_be_is_named(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match="^" + message.replace("[", r"\[").replace("^", r"\^")):
        LoadRequest.from_args(parse(["produce", "retail-day", *flags]))


def test_the_scenario_model_checks_the_ranges_and_blames_the_flag() -> None:
    from scenarios import ScenarioError

    with pytest.raises(ScenarioError) as caught:
        LoadRequest.from_args(parse(["produce", "retail-day", "--rate", "1e9"])).resolve()
    assert str(caught.value).startswith("--rate: load.rate: expected a value <= 10000000")


def test_a_short_run_fits_the_warmup_once() -> None:
    request = LoadRequest.from_args(parse(["produce", "retail-day", "--duration", "4s"]))
    assert request.base().scenario.load.warmup >= 4  # the bundled warm-up would not fit
    assert request.resolve().scenario.load.warmup == 0.4
    longer = LoadRequest.from_args(parse(["produce", "retail-day", "--duration", "1h"]))
    assert longer.resolve().scenario.load.warmup == longer.base().scenario.load.warmup


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--target", "a.b"], "--target describes another pipeline: use it with --sink external"),
        (["--wait-for-group", "g"], "--wait-for-group describes another pipeline"),
        (["--sink", "external", "--target", "nodot"], "--target must be DATABASE.COLLECTION"),
        (["--sink", "external", "--id-field", "$x"], "--id-field must be a field name"),
        (["--sink", "connect", "--group", "g"], "--group is for --sink external"),
        (["--sink", "external", "--group", "a", "--wait-for-group", "b"], "--group and --wait"),
        (["--sink", "external", "--backlog", "10"], "--backlog needs a pipeline bankstream"),
        (["--backlog", "0"], "--backlog must be 1 event or more, got 0"),
        (["--sink", "connect", "--shard", "0/2", "--run-id", "r"], "--shard runs bankstream's"),
        (["--backlog", "5", "--shard", "0/2", "--run-id", "r"], "--backlog is a run of one"),
        (
            ["--sink", "external", "--fault", "kill-sink@5s"],
            "--fault kill-sink@5s: bankstream does not run the external pipeline's processes",
        ),
    ],
)
def test_flags_of_another_pipeline_are_named(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError, match="^" + message.replace("$", r"\$")):
        RunRequest.from_args(parse(["run", "retail-day", *flags]))


def test_the_watch_follows_the_group_the_request_names() -> None:
    request = RunRequest.from_args(
        parse(["run", "retail-day", "--sink", "external", "--wait-for-group", "mine"])
    )
    argv = parse(request.watch_argv("t", "db.c", "mine", Path("/tmp/s.jsonl")))
    assert (argv.topic, argv.target, argv.wait_for_group, argv.group) == ("t", "db.c", "mine", None)
    connect = RunRequest.from_args(parse(["run", "retail-day", "--sink", "connect"]))
    argv = parse(connect.watch_argv("t", "db.c", "connect-x", Path("/tmp/s.jsonl")))
    assert argv.wait_for_group == "connect-x"  # the load starts once the connector reads
