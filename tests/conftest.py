"""Session fixtures that start the real infrastructure on free loopback ports.

Each component is installed by scripts/ (`make setup`); a missing one fails the test
that needs it with the command that installs it. Nothing here is ever skipped.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from qarun_core.ports import free_port
from qarun_devstack.cluster import RealCluster
from qarun_devstack.flink import FlinkSetup
from qarun_devstack.flink_session import FlinkSession
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KubeCluster
from qarun_devstack.paths import MissingComponentError
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis


class Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=Stoppable)


def _started(start: Callable[[Path], S], name: str) -> Iterator[S]:
    # Servers keep their data outside pytest's temp tree: a concurrent pytest run prunes
    # old /tmp/pytest-of-* directories, which would delete a live server's files.
    workdir = Path(tempfile.mkdtemp(prefix=f"qarun-test-{name}-"))
    try:
        component = start(workdir)
    except MissingComponentError as missing:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(str(missing), pytrace=False)
    try:
        yield component
    finally:
        component.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaBroker]:
    yield from _started(lambda d: KafkaBroker(d).start(), "kafka")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    yield from _started(lambda d: Postgres(d).start(), "postgres")


@pytest.fixture(scope="session")
def redis() -> Iterator[Redis]:
    yield from _started(lambda d: Redis(d).start(), "redis")


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeCluster]:
    yield from _started(lambda d: KubeCluster(d).start(), "kube")


@pytest.fixture(scope="session")
def flink() -> FlinkSetup:
    try:
        return FlinkSetup()
    except MissingComponentError as missing:
        pytest.fail(str(missing), pytrace=False)


@pytest.fixture(scope="session")
def flink_session_port() -> int:
    """The REST port of the session below, chosen first: the in-process operator is told
    it when it starts, and the session starts only for the tests that need it."""
    return free_port()


@pytest.fixture(scope="session")
def flink_session(flink_session_port: int) -> Iterator[FlinkSession]:
    """A standalone Flink session cluster (JobManager + TaskManager processes)."""
    yield from _started(
        lambda d: FlinkSession(d, rest_port=flink_session_port).start(), "flink-session"
    )


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[RealCluster]:
    """A real single-node cluster (kubelet, containerd, CoreDNS, the image registry):
    see qarun_devstack.cluster. Images come from `make images`; stopping it must leave
    nothing on the host, which teardown checks."""
    cluster = RealCluster(Path(tempfile.mkdtemp(prefix="qarun-test-node-")))
    try:
        cluster.start()
    except MissingComponentError as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()
    assert not cluster.leftovers, f"the real node left {cluster.leftovers} on the host"
