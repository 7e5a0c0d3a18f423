"""A Kafka broker restart and a PostgreSQL restart in the middle of a run: the run
completes with one result per question and no role of the pipeline exits. Each test
starts its own broker or database (the session ones are shared by other tests)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from confluent_kafka import Producer

from qarun_core.messages import Question
from qarun_core.topics import RunTopics
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis

from .conftest import Roles, SimFactory, Simulator, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import Infra, pipeline_env, start_pipeline, stored

TOTAL = 1500
S = TypeVar("S", KafkaBroker, Postgres)


def started_in_temp(start: Callable[[Path], S]) -> Iterator[S]:
    workdir = Path(tempfile.mkdtemp(prefix="qarun-test-restart-"))
    component = start(workdir)
    try:
        yield component
    finally:
        component.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def infra_own_kafka(postgres: Postgres, redis: Redis) -> Iterator[Infra]:
    for kafka in started_in_temp(lambda d: KafkaBroker(d).start()):
        yield Infra(kafka, postgres, redis)


@pytest.fixture
def infra_own_postgres(kafka: KafkaBroker, redis: Redis) -> Iterator[Infra]:
    for postgres in started_in_temp(lambda d: Postgres(d).start()):
        yield Infra(kafka, postgres, redis)


def run_through_restart(
    infra: Infra,
    sim: Simulator,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
    restart: Callable[[], None],
) -> None:
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_LLM__MAX_CONCURRENCY": "16",
        "QARUN_LLM__INITIAL_CONCURRENCY": "16",
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka, generator=False)
    forward = forwarder(run)
    producer = Producer({"bootstrap.servers": infra.kafka.bootstrap, "linger.ms": 5})
    for n in range(TOTAL):
        question = Question(run=run, question_id=f"q{n}", title=f"Restart question {n}?")
        producer.produce(RunTopics(run).questions, question.to_bytes(), question.key())
    assert producer.flush(30) == 0

    dsn = infra.postgres.dsn
    wait_for(lambda: stored(dsn, run)["rows"] >= TOTAL // 4, 180, "a quarter stored")
    restart()
    wait_for(lambda: stored(dsn, run)["rows"] >= TOTAL, 300, f"{TOTAL} results")

    counts = stored(dsn, run)
    assert counts["rows"] == counts["distinct"] == counts["attempts"] == TOTAL
    assert counts["failed"] == 0
    assert forward.error is None
    exited = [s.name for s in r.services if not s.alive()]
    assert not exited, f"exited during the restart: {exited}\n{r.logs()[-3000:]}"
    calls = sim.stats()["requests"]  # repeated: the calls since the last commit
    print(f"{TOTAL} questions, {calls} calls")


def test_kafka_broker_restart_mid_run(
    infra_own_kafka: Infra, simulator: SimFactory, roles: Callable[[dict[str, str]], Roles]
) -> None:
    kafka = infra_own_kafka.kafka
    forwarders: list[Forwarder] = []

    def forwarder(run: str) -> Forwarder:
        f = Forwarder(kafka.bootstrap, run)
        f.start()
        forwarders.append(f)
        return f

    sim = simulator("--latency", "0.05")
    try:
        run_through_restart(infra_own_kafka, sim, roles, forwarder, lambda: kafka.restart(2))
    finally:
        for f in forwarders:
            f.stop.set()
            f.join(30)


def test_postgres_restart_mid_run(
    infra_own_postgres: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator("--latency", "0.05")
    postgres = infra_own_postgres.postgres
    run_through_restart(infra_own_postgres, sim, roles, forwarder, lambda: postgres.restart(3))
