"""Session fixtures that start the real infrastructure on free loopback ports.

Each component is installed by scripts/ (`make setup`); a missing one fails the test
that needs it with the command that installs it. Nothing here is ever skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

import pytest

from qarun_devstack.flink import FlinkSetup
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KubeCluster
from qarun_devstack.paths import MissingComponentError
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis


class Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=Stoppable)


def _started(start: Callable[[], S]) -> Iterator[S]:
    try:
        component = start()
    except MissingComponentError as missing:
        pytest.fail(str(missing), pytrace=False)
    try:
        yield component
    finally:
        component.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    yield from _started(lambda: KafkaBroker(tmp_path_factory.mktemp("kafka")).start())


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    yield from _started(lambda: Postgres(tmp_path_factory.mktemp("postgres")).start())


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    yield from _started(lambda: Redis(tmp_path_factory.mktemp("redis")).start())


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    yield from _started(lambda: KubeCluster(tmp_path_factory.mktemp("kube")).start())


@pytest.fixture(scope="session")
def flink() -> FlinkSetup:
    try:
        return FlinkSetup()
    except MissingComponentError as missing:
        pytest.fail(str(missing), pytrace=False)
