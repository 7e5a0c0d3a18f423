"""After a SIGKILL of the LLM worker, the calls made again are those that were in flight:
the simulator counts every title's calls."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Producer

from qarun_core.messages import Question
from qarun_core.topics import RunTopics

from .conftest import Roles, SimFactory, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import Infra, pipeline_env, start_pipeline, stored

TOTAL = 1500
IN_FLIGHT = 16
KILLS = 3


def test_kill_9_repeats_about_the_calls_in_flight(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator("--latency", "0.2")  # 80 calls/s at 16 in flight
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_LLM__MAX_CONCURRENCY": str(IN_FLIGHT),
        "QARUN_LLM__INITIAL_CONCURRENCY": str(IN_FLIGHT),
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka, generator=False)
    forwarder(run)
    producer = Producer({"bootstrap.servers": infra.kafka.bootstrap, "linger.ms": 5})
    for n in range(TOTAL):
        question = Question(run=run, question_id=f"q{n}", title=f"Killed question {n}?")
        producer.produce(RunTopics(run).questions, question.to_bytes(), question.key())
    assert producer.flush(30) == 0

    dsn = infra.postgres.dsn
    for k in range(KILLS):
        at = TOTAL * (k + 1) // (KILLS + 2)
        wait_for(lambda at=at: stored(dsn, run)["rows"] >= at, 180, f"{at} stored")
        worker = next(s for s in r.services if s.name == "worker" and s.alive())
        worker.kill()
        r.start("llm_worker", name="worker")
    wait_for(lambda: stored(dsn, run)["rows"] >= TOTAL, 300, f"{TOTAL} results")

    repeated = sum(n - 1 for n in sim.titles().values())
    print(f"{repeated} calls repeated after {KILLS} kills at {IN_FLIGHT} in flight")
    # At each kill the 16 calls in flight are made again. An answer acknowledged since
    # the last commit is not: its mark is in Redis, and the next owner skips it, except
    # for the answers acknowledged in the moment before their marks were written (one
    # pipelined SET per loop turn: at 80 calls/s, a couple). Measured: 50 and 52;
    # before the marks, 89 (over the 78 this bound allowed then).
    assert repeated <= KILLS * (IN_FLIGHT + 2)
