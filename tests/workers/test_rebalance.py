"""Scaling the LLM workers makes no question's call twice: a second worker joins a
run in the middle, then the first one is stopped gracefully (SIGTERM), and the
simulator counts the calls of every title."""

from __future__ import annotations

import re
from collections.abc import Callable

from confluent_kafka import Producer

from qarun_core.messages import Question
from qarun_core.topics import RunTopics

from .conftest import Roles, SimFactory, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import Infra, pipeline_env, start_pipeline, stored

TOTAL = 2000


def test_worker_added_then_one_stopped_calls_each_question_once(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator("--latency", "0.2")  # no faults: every question takes exactly one call
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_LLM__MAX_CONCURRENCY": "16",
        "QARUN_LLM__INITIAL_CONCURRENCY": "16",
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka, generator=False)
    first = next(s for s in r.services if s.name == "worker")
    forward = forwarder(run)
    producer = Producer({"bootstrap.servers": infra.kafka.bootstrap, "linger.ms": 5})
    for n in range(TOTAL):
        question = Question(run=run, question_id=f"q{n}", title=f"Rebalance question {n}?")
        producer.produce(RunTopics(run).questions, question.to_bytes(), question.key())
    assert producer.flush(30) == 0

    dsn = infra.postgres.dsn
    wait_for(lambda: stored(dsn, run)["rows"] >= TOTAL // 5, 180, "a fifth stored")
    second = r.start("llm_worker", name="worker")  # joins: partitions move to it
    wait_for(lambda: stored(dsn, run)["rows"] >= TOTAL // 2, 180, "half stored")
    first.stop(grace=40)  # SIGTERM: it leaves, its partitions move to the second
    assert first.proc is not None
    assert first.proc.returncode == 0
    wait_for(lambda: stored(dsn, run)["rows"] >= TOTAL, 300, f"{TOTAL} results")

    assert forward.error is None
    calls = sim.titles()
    twice = {title: n for title, n in calls.items() if n != 1}
    assert not twice, f"{len(twice)} questions called more than once: {list(twice)[:10]}"
    assert len(calls) == TOTAL
    counts = stored(dsn, run)
    assert counts["rows"] == counts["distinct"] == counts["attempts"] == TOTAL
    answered = re.search(r"stopped: answered (\d+)", first.log_path.read_text())
    assert answered is not None
    assert 0 < int(answered[1]) < TOTAL  # both workers answered: the partitions did move
    assert second.alive()
