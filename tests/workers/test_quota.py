"""Quota exhaustion on the real pipeline: the simulator answers 429 insufficient_quota
after a number of requests; the questions it refuses wait in the long retry tier (with
the due time the settings give), are neither dead-lettered nor lost, and once the quota
is renewed every question ends in PostgreSQL exactly once."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

from qarun_core.messages import ErrorClass, RetryHeaders
from qarun_core.ports import free_port
from qarun_core.spec import QuotaRetry
from qarun_core.topics import tier_for
from qarun_workers.settings import RetrySettings, Settings

from .conftest import Roles, SimFactory, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import Infra, pipeline_env, read_topic, start_pipeline, stored
from .scrape import scrape, value

TOTAL = 500
QUOTA = 300  # requests the simulator answers before its quota is spent
QUOTA_DELAY = 5  # seconds; the longer of pipeline_env's "1s,5s" tiers
MAX_ATTEMPTS = 2


def renew_quota(port: int) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/quota/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200


def test_quota_exhaustion_waits_in_the_long_tier_and_loses_nothing(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator("--latency", "0.01", "--quota-after", str(QUOTA))
    run = unique_run()
    metrics_port = free_port()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_TRAFFIC__TOTAL": str(TOTAL),
        "QARUN_RETRY__QUOTA__DELAY_SECONDS": str(QUOTA_DELAY),
        # Quota refusals wait for the provider and do not count as failed calls: each
        # refused question is refused more often than this before the quota comes back.
        "QARUN_RETRY__MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "QARUN_METRICS__PORT": str(metrics_port),
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka)
    forward = forwarder(run)
    policy = RetrySettings(
        tiers=env["QARUN_RETRY__TIERS"], quota=QuotaRetry(delay_seconds=QUOTA_DELAY)
    )
    topics, tiers = Settings(run=run, retry=policy).topics, policy.tiers
    long_tier = topics.retry(max(tiers))
    assert topics.retry(tier_for(QUOTA_DELAY, tiers)) == long_tier

    # Phase 1: the quota runs out. The first QUOTA questions are stored; every other one
    # is deferred to the long tier, and keeps being deferred while the quota is spent.
    def deferred() -> set[bytes]:
        return {m.key() or b"" for m in read_topic(infra.kafka.bootstrap, long_tier)}

    wait_for(lambda: len(deferred()) >= TOTAL - QUOTA, 180, "every refused question deferred", 2)
    wait_for(lambda: stored(infra.postgres.dsn, run)["rows"] >= QUOTA, 120, f"{QUOTA} results")
    assert len(deferred()) == TOTAL - QUOTA
    assert stored(infra.postgres.dsn, run)["rows"] == QUOTA  # nothing answered past the quota
    assert sim.stats()["outcomes"]["ok"] == QUOTA
    limit = value(scrape(metrics_port), "qarun_worker_concurrency_limit", run)
    # More refusals than MAX_ATTEMPTS a question, and still no dead letter.
    more = MAX_ATTEMPTS * (TOTAL - QUOTA)
    wait_for(lambda: sim.stats()["outcomes"]["quota_429"] > more, 120, "repeated refusals", 2)
    assert read_topic(infra.kafka.bootstrap, topics.dlq) == []
    # Nor did the refusals cut the concurrency limit: they are no overload signal.
    assert value(scrape(metrics_port), "qarun_worker_concurrency_limit", run) == limit > 0

    # Phase 2: the quota is renewed; the deferred questions come back and are answered.
    renew_quota(sim.port)
    wait_for(lambda: stored(infra.postgres.dsn, run)["rows"] >= TOTAL, 240, f"{TOTAL} results")
    assert forward.error is None
    counts = stored(infra.postgres.dsn, run)
    assert counts["rows"] == counts["distinct"] == counts["attempts"] == TOTAL
    assert counts["failed"] == 0
    assert read_topic(infra.kafka.bootstrap, topics.dlq) == []

    refused = sim.stats()["outcomes"]["quota_429"]
    assert counts["retries"] == refused >= TOTAL - QUOTA  # each refusal was one deferral
    assert all(read_topic(infra.kafka.bootstrap, t) == [] for t in topics.retries if t != long_tier)
    waiting = read_topic(infra.kafka.bootstrap, long_tier)
    assert len(waiting) == refused
    for msg in waiting:
        headers = RetryHeaders.from_headers(msg.headers())
        assert headers.error == ErrorClass.QUOTA
        assert headers.reason == "429 insufficient_quota"
        # Due = the moment it was deferred + the quota delay; the message's own
        # timestamp is taken by the producer right after the due time is computed.
        _kind, published_ms = msg.timestamp()
        assert -1 <= published_ms + QUOTA_DELAY * 1000 - headers.due_ms < 1000
