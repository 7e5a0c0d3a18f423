"""Dead letters stay one per question when the LLM worker and the retry consumer are
killed (SIGKILL) again and again in a run where calls fail for good (400) or until
their attempts are exhausted (503): in PostgreSQL, in what `qarun dlq` and `qarun
replay` read, and for every failed question exactly one."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import psycopg
from confluent_kafka import Producer

from qarun_cli.deadletters import read_dead_letters, read_topic
from qarun_core.messages import Question
from qarun_core.topics import RunTopics

from .conftest import Roles, SimFactory, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import Infra, pipeline_env, start_pipeline, stored

TOTAL = 1200
KILLS = 5


def test_dead_letters_one_per_question_after_kills(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator("--latency", "0.05", "--rate-400", "0.15", "--rate-503", "0.4")
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_RETRY__MAX_ATTEMPTS": "2",
        "QARUN_RETRY__OVERLOAD__BASE_DELAY_SECONDS": "1",
        "QARUN_LLM__MAX_CONCURRENCY": "32",
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka, generator=False)
    forwarder(run)
    topics = RunTopics(run)
    producer = Producer({"bootstrap.servers": infra.kafka.bootstrap, "linger.ms": 5})
    for n in range(TOTAL):
        question = Question(run=run, question_id=f"q{n}", title=f"Doomed question {n}?")
        producer.produce(topics.questions, question.to_bytes(), question.key())
    assert producer.flush(30) == 0

    dsn = infra.postgres.dsn
    wait_for(lambda: stored(dsn, run)["rows"] >= 100, 120, "the first results")
    for _ in range(KILLS):  # mid-run, with calls, retries and dead letters in flight
        for victim in [s for s in r.services if s.name in ("worker", "retry") and s.alive()]:
            victim.kill()
            r.start("llm_worker" if victim.name == "worker" else "retry", name=victim.name)
        time.sleep(2.5)
    wait_for(lambda: stored(dsn, run)["rows"] >= TOTAL, 300, f"{TOTAL} results")

    counts = stored(dsn, run)
    assert counts["rows"] == counts["distinct"] == TOTAL
    with psycopg.connect(dsn) as conn:
        letters = Counter(
            row[0]
            for row in conn.execute("SELECT question_id FROM dead_letters WHERE run = %s", (run,))
        )
        failed = {
            row[0]
            for row in conn.execute(
                "SELECT question_id FROM results WHERE run = %s AND status = 'failed'", (run,)
            )
        }
    assert failed, "no question failed: the run tested nothing"
    doubled = {q: n for q, n in letters.items() if n > 1}
    assert not doubled, f"{len(doubled)} questions with more than one stored dead letter"
    assert failed <= set(letters)

    published = Counter(
        d["question_id"] for d in read_topic(infra.kafka.bootstrap, topics.dlq)
    )  # as published: the kills publish some twice
    shown = Counter(d["question_id"] for d in read_dead_letters(infra.kafka.bootstrap, topics.dlq))
    assert set(shown) == set(published)
    assert max(shown.values()) == 1  # what `qarun dlq` lists and `qarun replay` re-sends
    print(
        f"{len(failed)} failed questions, {sum(published.values())} letters published "
        f"for {len(published)} questions, {len(letters)} stored"
    )
