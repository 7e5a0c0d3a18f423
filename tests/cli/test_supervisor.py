"""The local supervisor on real child processes: replicas, crash restarts, scaling,
SIGTERM then SIGKILL, one log file per process."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from qarun_cli.supervisor import Component, Exited, Restart, Supervisor, SupervisorEvent

# Prints its replica, then waits; on SIGTERM it says so and exits 0.
POLITE = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print('terminated', flush=True), sys.exit(0)))
print('replica', os.environ['REPLICA'], flush=True)
while True:
    time.sleep(0.1)
"""
# Ignores SIGTERM: only SIGKILL stops it.
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print('ready', flush=True)
while True:
    time.sleep(0.1)
"""


def until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def polite(replicas: int = 1) -> Component:
    return Component(
        "polite",
        [sys.executable, "-c", POLITE],
        replicas=replicas,
        env_for=lambda i: {"REPLICA": str(i)},
    )


def test_replicas_have_their_own_log_and_env(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.start(polite(replicas=3))
    try:
        for i in range(3):
            log = tmp_path / f"polite-{i}.log"
            until(lambda log=log: log.exists() and "replica" in log.read_text())
            assert log.read_text().strip() == f"replica {i}"
        assert sup.alive("polite") == 3
    finally:
        sup.stop()
    assert sup.alive("polite") == 0
    assert "terminated" in (tmp_path / "polite-0.log").read_text()  # SIGTERM, not SIGKILL
    assert sup.exit_codes("polite") == [0, 0, 0]


def test_a_killed_replica_is_restarted(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.start(polite(replicas=2))
    try:
        log = tmp_path / "polite-1.log"
        until(lambda: "replica 1" in log.read_text())
        before = sup.pid(sup.replicas["polite"][1])
        killed = sup.kill("polite", 1)
        assert killed == before
        events: list[SupervisorEvent] = []
        until(lambda: bool(events.extend(sup.check())) or sup.restarts("polite") == 1)
        assert Exited("polite-1", -9) in events
        assert str(Exited("polite-1", -9)) == "polite-1 exited with code -9"
        until(lambda: sup.alive("polite") == 2)
        assert sup.pid(sup.replicas["polite"][1]) != before
        # The restarted replica appends to the same log.
        until(lambda: log.read_text().count("replica 1") == 2)
    finally:
        sup.stop()


def test_scale_up_and_down(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.start(polite(replicas=1))
    try:
        sup.scale("polite", 4)
        until(lambda: sup.alive("polite") == 4)
        gone = sup.replicas["polite"][3]
        sup.scale("polite", 2)
        assert sup.alive("polite") == 2
        assert not gone.service.alive()
        assert sup.check() == []  # scaled-down replicas are not restarted
    finally:
        sup.stop()


def test_a_job_that_succeeds_is_not_restarted(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    job = Component("job", [sys.executable, "-c", "print('done')"], restart=Restart.ON_FAILURE)
    failing = Component(
        "flaky", [sys.executable, "-c", "raise SystemExit(3)"], restart=Restart.ON_FAILURE
    )
    sup.start(job)
    sup.start(failing)
    try:
        until(lambda: (sup.check() is not None) and sup.finished("job"))
        until(lambda: (sup.check() is not None) and sup.restarts("flaky") >= 1)
        assert sup.restarts("job") == 0
        assert sup.exit_codes("job") == [0]
    finally:
        sup.stop()


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    sup.start(Component("stubborn", [sys.executable, "-c", STUBBORN]))
    sup.start(polite())
    until(lambda: "ready" in (tmp_path / "stubborn-0.log").read_text())
    pid = sup.pid(sup.replicas["stubborn"][0])
    assert pid is not None
    sup.stop(order=("stubborn",), grace=1.0)
    assert sup.exit_codes("stubborn") == [-9]
    assert sup.exit_codes("polite") == [0]
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
