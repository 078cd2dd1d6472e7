"""Processes the local stack starts: spawn with a pid file, find again, stop. Pure OS plumbing."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child that has exited (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class Spawned:
    """A server process we started and do not wait for (it outlives the command that started it)."""

    pid: int
    returncode: int | None = field(default=None)

    def poll(self) -> int | None:
        """The exit code once the process has ended, else None (a -1 if it was reaped elsewhere)."""
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            if Path(f"/proc/{self.pid}").exists():
                return None
            self.returncode = -1
            return self.returncode
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


@dataclass(frozen=True)
class ManagedProcess:
    """A server process of the stack: its pid file, its log file and a marker in its argv.

    The marker (the stack's home folder) is how a pid read back from the pid file is known to
    still be ours, and not a recycled pid of some other program.
    """

    name: str
    run_dir: Path
    log_file: Path
    marker: str

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        _reap(pid)
        if self.marker in _cmdline(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def spawn(self, argv: list[str]) -> Spawned:
        """Start ``argv`` in its own session, output appended to the log file, pid recorded.

        posix_spawn rather than subprocess.Popen: the server outlives this Python process and
        nobody waits for it here, which Popen would report as a leaked child.
        """
        if self.marker not in " ".join(argv):
            msg = f"{self.name}: the command line must carry the marker {self.marker}"
            raise ValueError(msg)
        program = shutil.which(argv[0]) or argv[0]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        pid = os.posix_spawn(
            program,
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (
                    os.POSIX_SPAWN_OPEN,
                    1,
                    str(self.log_file),
                    os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                    0o644,
                ),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        proc = Spawned(pid)
        self.pid_file.write_text(f"{pid}\n")
        # right after exec, /proc/PID/cmdline can still be empty for a moment: wait for it, so
        # that pid() finds the process as soon as spawn() returns
        deadline = time.monotonic() + 5
        while self.marker not in _cmdline(proc.pid) and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        return proc

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; True if a process of ours was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.1)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self._alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def _alive(self, pid: int) -> bool:
        """True until the process is gone: a zombie, or no process at all, is not alive."""
        _reap(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        state = stat.rpartition(")")[2].split()[0]
        return state not in ("Z", "X")
