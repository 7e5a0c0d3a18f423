"""Acceptance: questions through generator -> LLM worker -> retry -> storage writer on
real Kafka, PostgreSQL and Redis, with the simulator injecting 429 and 503 faults."""

from __future__ import annotations

from collections.abc import Callable

from .conftest import Roles, SimFactory, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import QUESTIONS, Infra, pipeline_env, start_pipeline, stored


def test_two_thousand_questions_each_stored_exactly_once(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator(
        "--latency",
        "0.02",
        "--latency-dist",
        "exponential",
        "--rate-429",
        "0.3",
        "--rate-503",
        "0.1",
        "--retry-after",
        "0.5",
    )
    run = unique_run()
    r = roles(pipeline_env(run, infra, sim.base_url))
    start_pipeline(r, run, infra.kafka)
    forward = forwarder(run)

    wait_for(
        lambda: stored(infra.postgres.dsn, run)["rows"] >= QUESTIONS,
        300,
        f"{QUESTIONS} results in PostgreSQL",
    )
    assert forward.error is None
    counts = stored(infra.postgres.dsn, run)
    outcomes = sim.stats()["outcomes"]
    assert counts["rows"] == counts["distinct"] == QUESTIONS
    assert counts["failed"] == 0
    assert counts["attempts"] == QUESTIONS  # one scored attempt each: nothing doubled
    assert counts["retries"] == outcomes["fault_429"] + outcomes["fault_503"]
    assert outcomes["fault_429"] > 0.2 * QUESTIONS
    assert outcomes["ok"] >= QUESTIONS


def test_kill_9_of_worker_and_storage_writer_loses_and_doubles_nothing(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    total = 1500
    sim = simulator("--latency", "0.05", "--rate-503", "0.1")
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url)
    env |= {
        "QARUN_TRAFFIC__TOTAL": str(total),
        "QARUN_TRAFFIC__RATE_PER_SECOND": "150",
        "QARUN_LLM__MAX_CONCURRENCY": "16",
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka)
    forwarder(run)
    wait_for(lambda: stored(infra.postgres.dsn, run)["rows"] >= total // 4, 120, "a quarter stored")
    for victim in [s for s in r.services if s.name in ("worker", "storage")]:
        victim.kill()
        r.start("llm_worker" if victim.name == "worker" else "storage_writer", name=victim.name)

    wait_for(lambda: stored(infra.postgres.dsn, run)["rows"] >= total, 300, f"{total} results")
    counts = stored(infra.postgres.dsn, run)
    assert counts["rows"] == counts["distinct"] == counts["attempts"] == total
    assert counts["failed"] == 0
