"""Fixtures for the pipeline services: the LLM simulator and worker processes on real
Kafka, PostgreSQL and Redis (the session fixtures in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from qarun_core.ports import free_port
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.postgres import Postgres
from qarun_devstack.process import Service, port_open
from qarun_devstack.redis import Redis

from .forwarding import Forwarder

if TYPE_CHECKING:
    from .pipeline import Infra


@dataclass
class Simulator:
    service: Service
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            result: dict[str, Any] = json.load(r)
            return result

    def titles(self) -> dict[str, int]:
        """How many calls each title got."""
        url = f"http://127.0.0.1:{self.port}/stats/titles"
        with urllib.request.urlopen(url, timeout=10) as r:
            result: dict[str, int] = json.load(r)
            return result


SimFactory = Callable[..., Simulator]


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[SimFactory]:
    """Start LLM simulators: simulator("--latency", "0.01", ...) -> Simulator."""
    started: list[Service] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Simulator:
        port = free_port()
        argv = [sys.executable, "-m", "qarun_simulator", "--port", str(port), *args]
        log = tmp_path / f"sim-{port}.log"
        service = Service("llm-sim", argv, log, env=env).start()
        started.append(service)
        service.wait_ready(lambda: port_open(port), 30, "listening")
        return Simulator(service, port)

    yield start
    for service in started:
        service.stop()


@dataclass
class Roles:
    """Worker processes of one run, with the environment the operator would set."""

    workdir: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def start(self, module: str, *args: str, name: str = "", **env: str) -> Service:
        label = name or module
        argv = [sys.executable, "-m", f"qarun_workers.{module}", *args]
        log = self.workdir / f"{label}-{len(self.services)}.log"
        service = Service(label, argv, log, env={**self.env, **env}).start()
        self.services.append(service)
        return service

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop(grace=40)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))


def unique_run() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def roles(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Roles]]:
    made: list[Roles] = []

    def make(env: dict[str, str]) -> Roles:
        base = {k: v for k, v in os.environ.items() if not k.startswith("QARUN_")}
        r = Roles(tmp_path, {**base, **env})
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop_all()


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
    """Poll `check` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def forwarder(kafka: KafkaBroker) -> Iterator[Callable[[str], Forwarder]]:
    started: list[Forwarder] = []

    def start(run: str) -> Forwarder:
        f = Forwarder(kafka.bootstrap, run)
        f.start()
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop.set()
        f.join(30)


@pytest.fixture
def infra(kafka: KafkaBroker, postgres: Postgres, redis: Redis) -> Infra:
    from .pipeline import Infra  # noqa: PLC0415 - pipeline imports this module

    return Infra(kafka, postgres, redis)
