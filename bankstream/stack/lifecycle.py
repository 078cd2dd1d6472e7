"""`stack up / down / status`: start what is missing, wait until it answers, stop our own."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from bankstream.errors import BankstreamError, UsageError
from bankstream.settings import Settings
from bankstream.stack.process import ManagedProcess, Spawned, port_answers
from bankstream.stack.services import LOCALHOST, Service, all_services

# How a service is provided: started by this stack, already there on the local port without our
# pid file, or a server the user pointed bankstream at with a setting.
LOCAL, FOREIGN, EXTERNAL = "local", "foreign", "external"


@dataclass(frozen=True)
class ServiceState:
    name: str
    title: str
    address: str
    mode: str
    answering: bool
    detail: str
    pid: int | None = None
    log_file: Path | None = None
    started: bool = False


Report = Callable[[str], None]


def process_of(service: Service) -> ManagedProcess:
    home = service.settings.home
    return ManagedProcess(
        name=service.name,
        run_dir=home / "run",
        log_file=service.log_file,
        marker=str(home),
    )


def _try_probe(service: Service, timeout: float) -> tuple[bool, str]:
    """(answers, detail); a setting to correct is raised, not shown as 'down'."""
    try:
        return True, service.probe(timeout)
    except UsageError:
        raise
    except BankstreamError as exc:
        return False, exc.message


def install(settings: Settings, report: Report = print) -> None:
    """Fetch everything the local services need (idempotent); external services need nothing."""
    for service in all_services(settings):
        if not service.external:
            report(f"installing {service.title} ...")
            service.install()


def up(settings: Settings, report: Report = print) -> list[ServiceState]:
    """Start every local service that is not running and wait until each one answers."""
    states: dict[str, ServiceState] = {}
    starting: list[tuple[Service, Spawned | None, float]] = []
    for service in all_services(settings):
        if service.external:
            ok, detail = _try_probe(service, settings.connect_timeout)
            if not ok:
                raise BankstreamError(detail)
            states[service.name] = ServiceState(
                service.name, service.title, service.address, EXTERNAL, True, detail
            )
            continue
        proc = process_of(service)
        variant_file = settings.home / "run" / f"{service.name}.variant"
        pid = proc.pid()
        if pid is not None:
            running = variant_file.read_text().strip() if variant_file.is_file() else None
            if running not in (None, service.variant):
                shown = {"default": "1 broker"} if service.name.startswith("kafka") else {}
                msg = (
                    f"the local {service.title} already runs as "
                    f"{shown.get(running, running)!r}, not "
                    f"{shown.get(service.variant, service.variant)!r}: stop it first with "
                    "`bankstream stack down`"
                )
                raise UsageError(msg)
            # ours, running (maybe still starting): wait for it below
            starting.append((service, None, time.monotonic()))
            continue
        if service.name == "connect":  # its worker needs Kafka answering when it starts
            for earlier, spawned, began in starting:
                states[earlier.name] = _wait_ready(
                    earlier, spawned, began, settings.start_timeout, report
                )
            starting = []
        taken = [port for port in service.ports if port_answers(LOCALHOST, port)]
        if taken:
            ok, detail = _try_probe(service, min(settings.connect_timeout, 5.0))
            if not ok:
                msg = (
                    f"port {LOCALHOST}:{taken[0]} needed by the local {service.title} is taken "
                    f"by another process that does not answer as {service.title}: stop it, or "
                    f"point {service.setting} at an existing {service.title}"
                )
                raise UsageError(msg)
            states[service.name] = ServiceState(
                service.name,
                service.title,
                service.address,
                FOREIGN,
                True,
                detail + " (not started by bankstream)",
            )
            continue
        service.install()
        report(f"starting {service.title} on {service.address} (log: {service.log_file})")
        child = proc.spawn(service.command())
        variant_file.write_text(service.variant + "\n")
        starting.append((service, child, time.monotonic()))

    for service, spawned, began in starting:
        states[service.name] = _wait_ready(service, spawned, began, settings.start_timeout, report)
    return [states[s.name] for s in all_services(settings)]


def _wait_ready(
    service: Service, child: Spawned | None, began: float, timeout: float, report: Report
) -> ServiceState:
    proc = process_of(service)
    deadline = began + timeout
    detail = ""
    while True:
        if child is not None and child.poll() is not None:
            proc.pid_file.unlink(missing_ok=True)
            msg = (
                f"{service.title} exited during start (exit code {child.returncode}): "
                f"see {service.log_file}"
            )
            raise BankstreamError(msg)
        ok, detail = _try_probe(service, 1.0)
        if ok:
            took = time.monotonic() - began
            if child is not None:
                report(f"{service.title} answers after {took:.1f} s: {detail}")
            return ServiceState(
                service.name,
                service.title,
                service.address,
                LOCAL,
                True,
                detail,
                pid=proc.pid(),
                log_file=service.log_file,
                started=child is not None,
            )
        if time.monotonic() > deadline:
            msg = (
                f"{service.title} did not answer on {service.address} within {timeout:g} s "
                f"({detail}): see {service.log_file}"
            )
            raise BankstreamError(msg)
        time.sleep(0.25)


def brokers(settings: Settings) -> list[ManagedProcess]:
    """The local stack's running Kafka brokers (their pid files), the first one first."""
    found = []
    for service in all_services(settings):
        if service.name.startswith("kafka") and not service.external:
            proc = process_of(service)
            if proc.pid() is not None:
                found.append(proc)
    return found


def down(
    settings: Settings, report: Report = print, names: Collection[str] | None = None
) -> list[str]:
    """Stop the local services this stack started (pid files); others are left alone.

    ``names`` limits it to those services (e.g. only what a test session started).
    """
    stopped = []
    for service in reversed(all_services(settings)):
        if names is not None and service.name not in names:
            continue
        if process_of(service).stop():
            report(f"stopped {service.title}")
            stopped.append(service.name)
    return stopped


def status(settings: Settings) -> list[ServiceState]:
    """Each service, its address, who runs it and whether it answers now."""
    states = []
    for service in all_services(settings):
        proc = process_of(service)
        pid = None if service.external else proc.pid()
        mode = EXTERNAL if service.external else LOCAL if pid else FOREIGN
        if mode == FOREIGN and not any(port_answers(LOCALHOST, p) for p in service.ports):
            states.append(
                ServiceState(
                    service.name,
                    service.title,
                    service.address,
                    LOCAL,
                    False,
                    "not running: `bankstream stack up` starts it",
                )
            )
            continue
        ok, detail = _try_probe(service, min(settings.connect_timeout, 3.0))
        states.append(
            ServiceState(
                service.name,
                service.title,
                service.address,
                mode,
                ok,
                detail,
                pid=pid,
                log_file=None if service.external else service.log_file,
            )
        )
    return states


def memory_store_pid(settings: Settings) -> int | None:
    """The pid of the local in-memory MongoDB-wire server, when this stack runs it and the
    settings point at it (None: real MongoDB, the file-backed store, a server bankstream did not
    start, or not running)."""
    for service in all_services(settings):
        if service.name != "mongo" or service.external:
            continue
        pid = process_of(service).pid()
        variant = settings.home / "run" / f"{service.name}.variant"
        if pid is None or not variant.is_file() or variant.read_text().strip() != "memory":
            return None
        return pid
    return None


def memory_store_heap(settings: Settings) -> int | None:
    """The Java heap limit, in bytes, of the local in-memory MongoDB-wire server (see
    :func:`memory_store_pid`)."""
    pid = memory_store_pid(settings)
    return None if pid is None else heap_limit(pid)


def heap_limit(pid: int) -> int | None:
    """The Java heap limit, in bytes, of process ``pid``, read from its own -Xmx."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for word in words:
        if word.startswith(b"-Xmx"):
            return _bytes(word[4:].decode())
    return None


def heap_in_use(pid: int) -> int | None:
    """Bytes of Java heap in use by process ``pid`` (collected garbage or not), from the JDK's
    ``jcmd``; None when it cannot tell."""
    import re
    import shutil
    import subprocess

    jcmd = shutil.which("jcmd")
    if jcmd is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 (the JDK's own tool, our own server's pid)
            [jcmd, str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"heap\s+total \d+K, used (\d+)K", done.stdout)
    return int(found.group(1)) * 1024 if found else None


def _bytes(size: str) -> int | None:
    """``6g`` -> bytes (Java's -Xmx units: k, m, g, t; none: bytes)."""
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    number, unit = size[:-1], size[-1:].lower()
    if unit.isdigit():
        number, unit = size, ""
    if not number.isdigit() or unit not in units:
        return None
    return int(number) * units[unit]
