"""The Docker path without a Docker engine: the image's install reproduced from the Dockerfile's
own steps; every compose app service runs a real bankstream command; every Prometheus scrape
target is a compose service that exposes that port; Grafana gets the dashboard."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from bankstream.commands import COMMANDS
from tests.conftest import ROOT

IMAGE = "bankstream:latest"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def build_stage() -> list[tuple[str, str]]:
    """The Dockerfile's first stage (where the project is copied and built)."""
    steps = instructions((ROOT / "Dockerfile").read_text())
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    end = froms[1] if len(froms) > 1 else len(steps)
    return steps[froms[0] + 1 : end]


def ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
    return False


def reproduce_context(into: Path) -> None:
    """Copy what the build stage's COPY steps copy (minus .dockerignore) into ``into``."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, rest in build_stage():
        if word != "COPY":
            continue
        *sources, destination = rest.split()
        assert not any(s.startswith("--") for s in sources), "COPY flags are not reproduced"
        target = into / destination.removeprefix("./").rstrip("/")
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file in the repository"
            if path.is_file():
                dest = target / path.name if destination.endswith("/") else target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
                continue
            for found in path.rglob("*"):
                relative = found.relative_to(ROOT).as_posix()
                if found.is_file() and not ignored(relative, patterns):
                    dest = target / found.relative_to(path)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(found, dest)


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding only the wheel the Dockerfile builds (its dependencies are this
    environment's, reached through a path entry; this checkout is not on its path)."""
    work = tmp_path_factory.mktemp("image")
    src, wheels, venv = work / "src", work / "wheels", work / "venv"
    reproduce_context(src)
    runs = [rest for word, rest in build_stage() if word == "RUN" and "pip wheel" in rest]
    assert runs, "the build stage builds no wheel"
    words = runs[0].split()
    words = [str(wheels) if w == "/wheels" else w for w in words[words.index("pip") :]]
    done = subprocess.run(
        [sys.executable, "-m", *words], cwd=src, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    built = sorted(str(w) for w in wheels.glob("*.whl"))
    subprocess.run(
        [venv / "bin/python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", *built],
        check=True,
    )
    site = subprocess.run(
        [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies: this environment's site-packages as a plain path entry (its .pth files,
    # among them this checkout's editable install, are not run from there)
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def in_image(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / "bankstream"), *args],
        capture_output=True,
        text=True,
        cwd=venv,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv)},
        check=False,
        timeout=120,
    )


@pytest.mark.slow
def test_the_image_install_runs_every_command(image_venv: Path):
    where = subprocess.run(
        [
            image_venv / "bin/python",
            "-c",
            "import bankstream, dashboard; print(bankstream.__file__)",
        ],
        capture_output=True,
        text=True,
        cwd=image_venv,
        check=True,
    ).stdout
    assert str(ROOT) not in where, "the checkout leaked into the image's environment"
    done = in_image(image_venv, "--help")
    assert done.returncode == 0, done.stderr
    done = in_image(image_venv, "scenarios", "list")
    assert done.returncode == 0 and "retail-day" in done.stdout, done.stderr
    for command in {name for name, _ in COMMANDS.items()}:
        done = in_image(image_venv, command, "--help")
        assert done.returncode == 0, f"bankstream {command} --help: {done.stderr[-2000:]}"
    # the dashboard's Streamlit scripts are files of the installed package
    app = subprocess.run(
        [image_venv / "bin/python", "-c", "import dashboard.cli as c; print(c.APP)"],
        capture_output=True,
        text=True,
        cwd=image_venv,
        check=True,
    ).stdout.strip()
    assert Path(app).is_file() and (Path(app).parent / "views" / "pipeline.py").is_file()


def test_every_package_pyproject_installs_is_copied():
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    packages = {p.rstrip("*") for p in include}
    copied = {
        source.rstrip("/")
        for word, rest in build_stage()
        if word == "COPY"
        for source in rest.split()[:-1]
    }
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0,
    reason="no Docker engine on this machine",
)
def test_the_real_image_builds_and_runs():  # pragma: no cover - needs an engine
    done = subprocess.run(
        ["docker", "build", "-t", "bankstream:test", str(ROOT)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run(
        ["docker", "run", "--rm", "bankstream:test", "scenarios", "list"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "retail-day" in done.stdout


# ---------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def app_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if s.get("image") == IMAGE}


def test_each_command_has_a_compose_service():
    commands = {s["command"][0] for s in app_services().values()}
    assert {"produce", "sink", "run", "dashboard", "stack"} <= commands


@pytest.mark.parametrize("name", sorted(app_services()))
def test_each_app_service_runs_a_real_bankstream_command(name: str):
    from bankstream.cli import parse

    command = app_services()[name]["command"]
    args = parse(command)  # argparse exits with code 2 on anything it does not know
    assert callable(args.run)
    if command[0] == "dashboard":
        from dashboard.cli import streamlit_flags

        assert streamlit_flags(args.extra)
    if command[0] in {"produce", "run"}:
        from scenarios import bundled_names

        assert command[1] in bundled_names()


def test_every_prometheus_target_is_a_compose_service_with_that_port():
    services = compose()["services"]
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = [
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    ]
    assert targets
    for target in targets:
        host, _, port = target.rpartition(":")
        if host == "localhost":
            continue  # Prometheus itself
        assert host in services, f"{target}: no compose service {host}"
        service = services[host]
        published = {str(p).split(":")[-1] for p in service.get("ports", [])}
        exposed = {str(p) for p in service.get("expose", [])}
        assert port in published | exposed, f"{target}: {host} does not expose {port}"
    # and the settings the app services use
    assert any("prometheus:9090" in str(s.get("environment")) for s in app_services().values())


def test_grafana_is_provisioned_with_the_dashboard():
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/bankstream.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert path in mounts, f"Grafana reads dashboards from {path}, nothing is mounted there"
    assert (ROOT / mounts[path] / "bankstream.json").is_file()
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    import json

    uids = {d["uid"] for d in datasource["datasources"]}
    board = json.loads((ROOT / mounts[path] / "bankstream.json").read_text())
    assert {t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]} <= uids


def test_the_compose_connect_fetches_the_connector_the_local_stack_does():
    from bankstream.settings import Settings
    from bankstream.stack.services import asset

    services = compose()["services"]
    assert services["connect"]["depends_on"]["connect-plugins"] == {
        "condition": "service_completed_successfully"
    }
    version = Settings.model_fields["connector_version"].default
    ours = asset("connector-pom.xml").read_text().replace("@CONNECTOR_VERSION@", version)
    theirs = (ROOT / "deploy/connect/pom.xml").read_text()
    strip = re.compile(r"<!--.*?-->", re.S)
    assert strip.sub("", ours) == strip.sub("", theirs)
    worker = (ROOT / "deploy/connect/worker.properties").read_text()
    assert "plugin.path=/plugins" in worker and "offset.flush.interval.ms=1000" in worker
