"""The authoring guide's examples are valid scenario sections."""

from __future__ import annotations

import re

import pytest
import yaml

from scenarios import Scenario
from tests.conftest import ROOT

GUIDE = (ROOT / "docs" / "scenarios.md").read_text()
BLOCKS = re.findall(r"```yaml\n(.*?)```", GUIDE, flags=re.S)
BASE = {"name": "guide", "population": {"customers": 10}, "load": {"rate": 1, "events": 10}}


def test_the_guide_has_an_example_of_every_section():
    sections = {key for block in BLOCKS for doc in yaml.safe_load_all(block) for key in doc}
    assert set(Scenario.model_fields) <= sections


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split(":")[0].strip("# \n"))
def test_each_example_validates(block: str):
    for doc in yaml.safe_load_all(block):
        Scenario.model_validate({**BASE, **doc})


def test_the_indexed_job_sends_one_shard_per_pod():
    import yaml

    job = yaml.safe_load((ROOT / "deploy" / "k8s" / "producer-job.yaml").read_text())
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["SHARDS"]) == spec["completions"] == spec["parallelism"]
    command = " ".join(container["args"])
    assert '--shard "${JOB_COMPLETION_INDEX}/${SHARDS}"' in command
    assert '--run-id "${RUN_ID}"' in command
    assert command.startswith("exec bankstream produce ")


def test_the_sink_deployment_joins_one_group_on_the_producers_topic():
    import yaml

    from scenarios import load

    deployment = yaml.safe_load((ROOT / "deploy" / "k8s" / "sink-deployment.yaml").read_text())
    assert deployment["kind"] == "Deployment"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    command = " ".join(container["args"])
    assert env["TOPIC"] == load("payday-rush").scenario.delivery.topic
    assert '--group "${GROUP}"' in command and '--topic "${TOPIC}"' in command
    job = yaml.safe_load((ROOT / "deploy" / "k8s" / "producer-job.yaml").read_text())
    run_id = {
        e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["GROUP"].endswith(run_id["RUN_ID"])
