"""Child processes for real infrastructure: start, wait until ready, stop.

Every service writes its output to a log file; when it fails to come up, the error
quotes the tail of that log, which is nearly always where the reason is.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM when our process dies,
    even by SIGKILL, so a killed test run or demo leaves no server behind."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class ServiceError(RuntimeError):
    """A service did not start or did not become ready."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


class Service:
    """One long-running child process with its own log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        if user is not None:
            # runuser keeps the child in our session, so stopping it stops the server.
            self.argv = ["runuser", "-u", user, "--", *self.argv]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads fork here
            )
        return self

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                self._fail(f"exited with code {self.proc.returncode} before it was {what}")
            with contextlib.suppress(Exception):  # not ready yet: the probe's error is expected
                if ready():
                    return
            time.sleep(0.2)
        self._fail(f"was not {what} after {timeout:.0f} s")

    def _fail(self, problem: str) -> None:
        self.stop()
        raise ServiceError(
            f"{self.name} {problem}.\ncommand: {' '.join(self.argv)}\n"
            f"log {self.log_path} (last lines):\n{tail(self.log_path)}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 10.0, how: signal.Signals = signal.SIGTERM) -> None:
        """Signal the process group (SIGTERM unless `how` says otherwise), then SIGKILL
        whatever is left after `grace` s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self._signal(how)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def run(
    argv: Sequence[str | os.PathLike[str]],
    what: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    user: str | None = None,
) -> str:
    """Run a one-shot command; raise with its output if it fails."""
    args = [str(a) for a in argv]
    if user is not None:
        args = ["runuser", "-u", user, "--", *args]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise ServiceError(
            f"{what} failed (exit {done.returncode}): {' '.join(args)}\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout
