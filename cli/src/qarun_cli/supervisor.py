"""Local processes for the components of a run: start N replicas, restart the ones that
crash, scale, stop them all (SIGTERM, then SIGKILL after a grace period).

Each replica is a `qarun_devstack.process.Service`: its own process group and its own
log file, `<logs>/<component>-<replica>.log`. The supervisor is polled from the
runner's loop (`check()`), so there is no thread and no signal handler in here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from qarun_devstack.process import Service

log = logging.getLogger(__name__)


class Restart(StrEnum):
    ALWAYS = "always"  # a Deployment: a crash or a clean exit is restarted
    ON_FAILURE = "on-failure"  # a Job: restarted only after a non-zero exit
    NEVER = "never"


@dataclass
class Component:
    """One role of a run: how to start it and how many replicas to keep."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    replicas: int = 1
    restart: Restart = Restart.ALWAYS
    # Called with the replica index: per-replica env (an instance name, a port).
    env_for: Callable[[int], Mapping[str, str]] | None = None


@dataclass
class Replica:
    component: str
    index: int
    service: Service
    restarts: int = 0
    exit_code: int | None = None  # set once it has exited for good
    next_start: float = 0.0  # monotonic time before which a crashed replica is not restarted

    @property
    def name(self) -> str:
        return f"{self.component}-{self.index}"


@dataclass(frozen=True)
class Exited:
    """A replica's process ended (a crash, a kill or a clean exit)."""

    replica: str
    code: int

    def __str__(self) -> str:
        return f"{self.replica} exited with code {self.code}"

    @property
    def failed(self) -> bool:
        return self.code != 0


@dataclass(frozen=True)
class Restarted:
    """A replica was started again after it exited; `restarts` counts them."""

    replica: str
    restarts: int

    def __str__(self) -> str:
        return f"restarted {self.replica} (restart {self.restarts})"


SupervisorEvent = Exited | Restarted


class Supervisor:
    """Keeps the desired replicas of each component running."""

    max_backoff = 10.0

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.components: dict[str, Component] = {}
        self.replicas: dict[str, list[Replica]] = {}

    def start(self, component: Component) -> None:
        self.components[component.name] = component
        self.replicas.setdefault(component.name, [])
        self.scale(component.name, component.replicas)

    def _service(self, component: Component, index: int) -> Service:
        env = dict(component.env)
        if component.env_for is not None:
            env.update(component.env_for(index))
        name = f"{component.name}-{index}"
        return Service(name, list(component.argv), self.logs / f"{name}.log", env=env)

    def scale(self, name: str, replicas: int) -> None:
        """Start or stop replicas (the highest indexes go first) until `replicas` run."""
        component = self.components[name]
        component.replicas = max(0, replicas)
        running = self.replicas[name]
        while len(running) < component.replicas:
            index = len(running)
            replica = Replica(name, index, self._service(component, index).start())
            running.append(replica)
            log.info("started %s (pid %s)", replica.name, self.pid(replica))
        surplus = running[component.replicas :]
        del running[component.replicas :]
        self.stop_replicas(surplus)

    def check(self) -> list[SupervisorEvent]:
        """Restart replicas that exited, as the policy says; returns what happened."""
        events: list[SupervisorEvent] = []
        now = time.monotonic()
        for name, replicas in self.replicas.items():
            component = self.components[name]
            for replica in replicas:
                proc = replica.service.proc
                if proc is None or (replica.exit_code is not None and not self._wants(replica)):
                    continue
                code = proc.poll()
                if code is None:
                    continue
                if replica.exit_code is None:
                    replica.exit_code = code
                    events.append(Exited(replica.name, code))
                    backoff = min(self.max_backoff, 0.5 * 2**replica.restarts)
                    replica.next_start = now + backoff
                if self._wants(replica) and now >= replica.next_start:
                    replica.service = self._service(component, replica.index).start()
                    replica.restarts += 1
                    replica.exit_code = None
                    events.append(Restarted(replica.name, replica.restarts))
        for event in events:
            log.info("%s", event)
        return events

    def _wants(self, replica: Replica) -> bool:
        policy = self.components[replica.component].restart
        if policy is Restart.ALWAYS:
            return True
        if policy is Restart.ON_FAILURE:
            return replica.exit_code not in (None, 0)
        return False

    def finished(self, name: str) -> bool:
        """Every replica of the component has exited with code 0 (a completed Job)."""
        replicas = self.replicas.get(name, [])
        return bool(replicas) and all(r.exit_code == 0 for r in replicas)

    def exit_codes(self, name: str) -> list[int | None]:
        return [r.exit_code for r in self.replicas.get(name, [])]

    def alive(self, name: str) -> int:
        return sum(1 for r in self.replicas.get(name, []) if r.service.alive())

    def restarts(self, name: str) -> int:
        return sum(r.restarts for r in self.replicas.get(name, []))

    @staticmethod
    def pid(replica: Replica) -> int | None:
        proc = replica.service.proc
        return None if proc is None else proc.pid

    def kill(self, name: str, index: int = 0) -> int | None:
        """SIGKILL one replica, as a crash would; `check()` restarts it. Returns its pid."""
        replica = self.replicas[name][index]
        pid = self.pid(replica)
        replica.service.kill()
        return pid

    def stop_replicas(self, replicas: Iterable[Replica], grace: float = 15.0) -> None:
        """SIGTERM every replica's process group at once, SIGKILL what is left after grace."""
        targets = [r for r in replicas if r.service.alive()]
        for replica in targets:
            self._signal(replica, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for replica in targets:
            proc = replica.service.proc
            assert proc is not None
            with contextlib.suppress(Exception):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                log.warning("%s did not stop within %.0f s: SIGKILL", replica.name, grace)
                replica.service.kill()
            if replica.exit_code is None:
                replica.exit_code = proc.returncode

    def stop(self, order: Sequence[str] = (), grace: float = 15.0) -> None:
        """Stop components in `order` first (each group all at once), then the rest."""
        names = [n for n in order if n in self.replicas]
        names += [n for n in self.replicas if n not in names]
        for name in names:
            self.components[name].restart = Restart.NEVER
            self.stop_replicas(self.replicas[name], grace)

    @staticmethod
    def _signal(replica: Replica, sig: signal.Signals) -> None:
        proc = replica.service.proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
