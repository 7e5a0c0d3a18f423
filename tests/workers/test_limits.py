"""Fleet-wide limits in Redis: four workers share one requests-per-minute limit (set, or
learned from the provider's headers), and a token budget stops the run."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis as redis_client

from qarun_core.keys import budget_key

from .conftest import Roles, SimFactory, unique_run, wait_for
from .pipeline import Infra, pipeline_env, start_pipeline

RPM = 600


def test_four_workers_share_600_requests_per_minute(
    infra: Infra, simulator: SimFactory, roles: Callable[[dict[str, str]], Roles]
) -> None:
    # The simulator enforces the same limit itself: a worker over it would get a 429.
    sim = simulator("--latency", "0.01", "--rpm-limit", str(RPM))
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_LLM__REQUESTS_PER_MINUTE": str(RPM),
        "QARUN_TRAFFIC__TOTAL": "1200",
    }
    r = roles(env)
    ensure_and_start_workers(r, run, infra, workers=4)
    # 750 requests under a 600/min cap take over 75 s: the limit is the bottleneck for
    # more than a whole window. Waiting on the count, not the clock, keeps a slow start-up
    # on a loaded machine from ending the test before the limit was ever reached.
    wanted = RPM * 5 // 4
    wait_for(lambda: sim.stats()["requests"] >= wanted, 300, f"{wanted} requests", every=5)
    stats = sim.stats()
    assert stats["requests"] >= wanted
    assert stats["max_per_minute"] <= RPM * 1.01
    assert "limit_429" not in stats["outcomes"]


def test_workers_learn_the_providers_limit_from_its_headers(
    infra: Infra, simulator: SimFactory, roles: Callable[[dict[str, str]], Roles]
) -> None:
    # No limit configured: the simulator's x-ratelimit-limit-requests is all they know.
    rpm = 1200
    sim = simulator("--latency", "0.05", "--rpm-limit", str(rpm), "--burst-seconds", "5")
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url) | {"QARUN_TRAFFIC__TOTAL": "2000"}
    r = roles(env)
    ensure_and_start_workers(r, run, infra, workers=2)
    # Past the simulator's burst (100 requests) and well into pacing.
    wait_for(lambda: sim.stats()["requests"] >= 300, 180, "300 requests", every=1)
    first = sim.stats()
    time.sleep(20)
    last = sim.stats()
    taken = (last["requests"] - first["requests"]) - (
        last["outcomes"].get("limit_429", 0) - first["outcomes"].get("limit_429", 0)
    )
    per_minute = taken / (last["clock"] - first["clock"]) * 60
    assert 0.9 * rpm <= per_minute <= 1.02 * rpm, per_minute
    # Two workers with 32 calls each in flight would ask 1,280 a second unpaced.
    assert last["outcomes"].get("limit_429", 0) <= 0.02 * last["requests"], last["outcomes"]


def test_token_budget_stops_sending(
    infra: Infra, simulator: SimFactory, roles: Callable[[dict[str, str]], Roles]
) -> None:
    budget = 20_000
    sim = simulator("--latency", "0.01")
    run = unique_run()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_BUDGET__MAX_TOKENS": str(budget),
        "QARUN_TRAFFIC__TOTAL": "2000",
    }
    r = roles(env)
    ensure_and_start_workers(r, run, infra, workers=1)
    client = redis_client.Redis.from_url(infra.redis.url)
    wait_for(lambda: client.hget(budget_key(run), "exhausted") is not None, 120, "the budget")
    requests = sim.stats()["requests"]
    time.sleep(2)  # nothing more may be sent once the budget is spent
    assert sim.stats()["requests"] == requests
    used = int(client.hget(budget_key(run), "used_tokens") or 0)
    assert budget - 1000 < used <= budget  # within one request's estimate of the budget
    assert b"token budget" in (client.hget(budget_key(run), "exhausted") or b"")


def ensure_and_start_workers(r: Roles, run: str, infra: Infra, workers: int) -> None:
    start_pipeline(r, run, infra.kafka, generator=False, storage=False)
    for n in range(workers - 1):
        r.start("llm_worker", name=f"worker{n + 2}")
    r.start("generator", "--no-storage")
