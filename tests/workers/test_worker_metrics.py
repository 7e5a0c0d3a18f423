"""The LLM worker's Prometheus endpoint, scraped on the real pipeline: its counters agree
with what the simulator answered and with the answers on the answers topic."""

from __future__ import annotations

import math
from collections.abc import Callable

from qarun_core.messages import Answer
from qarun_core.ports import free_port
from qarun_devstack.process import port_open
from qarun_operator import render
from qarun_workers.settings import MetricsSettings

from .conftest import Roles, SimFactory, unique_run, wait_for
from .pipeline import Infra, pipeline_env, read_topic, start_pipeline
from .scrape import scrape, value

TOTAL = 300


def test_worker_metrics_count_what_was_answered(
    infra: Infra, simulator: SimFactory, roles: Callable[[dict[str, str]], Roles]
) -> None:
    sim = simulator("--latency", "0.01", "--rate-429", "0.2", "--rate-400", "0.05")
    run = unique_run()
    port = free_port()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_TRAFFIC__TOTAL": str(TOTAL),
        "QARUN_METRICS__PORT": str(port),
        "QARUN_LLM__PRICING__PROMPT_USD_PER_MILLION": "1.5",
        "QARUN_LLM__PRICING__COMPLETION_USD_PER_MILLION": "6",
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka, generator=False, storage=False)
    r.start("generator", "--no-storage")
    wait_for(lambda: port_open(port), 60, "the worker's metrics endpoint")

    def settled() -> bool:  # every question answered or dead-lettered
        s = scrape(port)
        done = value(s, "qarun_worker_answers_total", run)
        return done + value(s, "qarun_worker_dead_letters_total", run) >= TOTAL

    wait_for(settled, 180, f"{TOTAL} questions settled")
    samples = scrape(port)
    outcomes = sim.stats()["outcomes"]
    answers = [
        Answer.from_bytes(m.value())
        for m in read_topic(infra.kafka.bootstrap, f"qarun.{run}.answers")
    ]

    def requests(outcome: str) -> float:
        return value(samples, "qarun_worker_requests_total", run, outcome=outcome)

    assert value(samples, "qarun_worker_answers_total", run) == len(answers) == outcomes["ok"]
    assert requests("ok") == outcomes["ok"]
    assert requests("overload") == outcomes["fault_429"] > 0
    assert requests("permanent") == outcomes["fault_400"] > 0
    assert requests("quota") == 0
    assert value(samples, "qarun_worker_retries_total", run) == outcomes["fault_429"]
    assert value(samples, "qarun_worker_dead_letters_total", run) == outcomes["fault_400"]
    assert value(samples, "qarun_worker_llm_latency_seconds_count", run) == len(answers)
    prompt = sum(a.prompt_tokens for a in answers)
    completion = sum(a.completion_tokens for a in answers)
    assert value(samples, "qarun_worker_tokens_total", run, kind="prompt") == prompt > 0
    assert value(samples, "qarun_worker_tokens_total", run, kind="completion") == completion > 0
    cost = value(samples, "qarun_worker_cost_usd_total", run)
    assert math.isclose(cost, sum(a.cost_usd for a in answers), rel_tol=1e-9)
    assert math.isclose(cost, (prompt * 1.5 + completion * 6) / 1e6, rel_tol=1e-9)
    assert value(samples, "qarun_worker_in_flight", run) == 0  # nothing left to ask
    assert 4 <= value(samples, "qarun_worker_concurrency_limit", run) <= 128


def test_operator_scrapes_the_port_the_worker_serves() -> None:
    assert MetricsSettings().port == render.WORKER_METRICS_PORT
