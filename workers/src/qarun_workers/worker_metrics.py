"""The LLM worker's Prometheus metrics, served on their own port (QARUN_METRICS__PORT).

The worker answers thousands of questions a second, so the hot path touches only
children bound to their labels once, here (no `.labels(...)` lookup per request), and
the two gauges are read from the adaptive limit when scraped instead of being updated
on every request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from qarun_core.messages import ErrorClass
from qarun_workers.settings import MetricsSettings

log = logging.getLogger(__name__)

OK = "ok"

ANSWERS = Counter("qarun_worker_answers_total", "Answers published", ["run"])
REQUESTS = Counter(
    "qarun_worker_requests_total",
    "LLM requests by outcome: ok, or the error class (overload, quota, permanent)",
    ["run", "outcome"],
)
RETRIES = Counter("qarun_worker_retries_total", "Questions sent to a retry tier", ["run"])
ALREADY_ANSWERED = Counter(
    "qarun_worker_already_answered_total",
    "Questions taken again whose answer was already acknowledged (after a kill): not asked",
    ["run"],
)
DEAD_LETTERS = Counter("qarun_worker_dead_letters_total", "Messages dead-lettered", ["run"])
IN_FLIGHT = Gauge(
    "qarun_worker_in_flight", "Questions being handled (waiting for a limit or the LLM)", ["run"]
)
LIMIT = Gauge("qarun_worker_concurrency_limit", "The adaptive (AIMD) concurrency limit", ["run"])
LATENCY = Histogram(
    "qarun_worker_llm_latency_seconds",
    "LLM call latency of answered requests",
    ["run"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
)
TOKENS = Counter("qarun_worker_tokens_total", "Tokens used by answers", ["run", "kind"])
COST = Counter("qarun_worker_cost_usd_total", "Cost of the answers in US dollars", ["run"])


class WorkerMetrics:
    """One run's children of every metric, bound once."""

    def __init__(self, run: str) -> None:
        self.answers = ANSWERS.labels(run)
        self.ok = REQUESTS.labels(run, OK)
        self.failed = {error: REQUESTS.labels(run, error.value) for error in ErrorClass}
        self.retries = RETRIES.labels(run)
        self.dead_letters = DEAD_LETTERS.labels(run)
        self.already_answered = ALREADY_ANSWERED.labels(run)
        self.latency = LATENCY.labels(run)
        self.prompt_tokens = TOKENS.labels(run, "prompt")
        self.completion_tokens = TOKENS.labels(run, "completion")
        self.cost = COST.labels(run)
        self.in_flight = IN_FLIGHT.labels(run)
        self.limit = LIMIT.labels(run)

    def watch(self, in_flight: Callable[[], float], limit: Callable[[], float]) -> None:
        """Read the gauges from the worker's adaptive limit at scrape time."""
        self.in_flight.set_function(in_flight)
        self.limit.set_function(limit)

    def answered(
        self, latency_s: float, prompt_tokens: int, completion_tokens: int, cost: float
    ) -> None:
        self.ok.inc()
        self.answers.inc()
        self.latency.observe(latency_s)
        self.prompt_tokens.inc(prompt_tokens)
        self.completion_tokens.inc(completion_tokens)
        if cost:
            self.cost.inc(cost)


def serve(settings: MetricsSettings) -> WSGIServer | None:
    """Start the /metrics endpoint; a taken port costs the metrics, not the worker."""
    if settings.port == 0:
        return None
    try:
        server, _thread = start_http_server(settings.port, settings.host)
    except OSError as error:  # e.g. several local replicas on one port
        log.warning("no metrics endpoint: port %d: %s", settings.port, error.strerror)
        return None
    log.info("metrics on %s:%d/metrics", settings.host, settings.port)
    return server
