"""An OpenAI-compatible LLM simulator for tests, demos and benchmarks.

`POST /v1/chat/completions` answers after a latency drawn from a configurable
distribution. When the question's title is in the loaded data set, the answer is
derived from the reference answer with controlled noise: a quality q ~ N(mean, sd)
keeps about a fraction q of the reference words and pads with filler, so lexical
scores spread around 0.85 +- 0.06 by default; a regeneration (a prompt carrying
feedback) answers a little better. Load-independent faults are injected at
configured rates: 429 rate limit (without headers unless --retry-after is given), 500,
503, timeouts (the request hangs), malformed bodies, and quota exhaustion after N
requests (until `POST /quota/reset`, as a provider's quota renews). A provider's
limits (`qarun_simulator.provider_limits`) are modelled too: a capacity of requests
worked on at once (--capacity, refused or slowed beyond it) and requests- and
tokens-per-minute limits with OpenAI's rate-limit headers (--rpm-limit, --tpm-limit).

Every random decision comes from a generator seeded with (seed, prompt title, how
many times that title was asked), so a run repeats whatever the arrival order.
With QARUN_SIMULATOR__API_KEY set (settings.py), requests must carry that key.
`GET /stats` returns counters for tests and benchmarks (with the time integral of the
requests in flight, so two readings give the mean between them), `GET /stats/titles` how
many times each title was asked (a question asked twice is a duplicate call); `/healthz`
for probes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import uvloop
from aiohttp import web

from qarun_simulator.answers import (
    load_references,
    noisy_answer,
    prompt_text,
    prompt_title,
    tokens,
)
from qarun_simulator.provider_limits import CAPACITY_MODES, LimitSettings, ProviderLimits, Refusal
from qarun_simulator.settings import SimulatorSettings
from qarun_simulator.stats import Stats
from qarun_workers import logs
from qarun_workers.runtime import settle_heap

log = logging.getLogger(__name__)


@dataclass
class Faults:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_400: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    quota_after: int = 0  # every request after this many gets 429 insufficient_quota; 0 = never
    retry_after: float = 0.0  # Retry-After of the random 429s; 0 = no header
    hang_seconds: float = 300.0


@dataclass
class Behaviour:
    latency: float = 0.5
    latency_dist: str = "constant"  # constant | exponential | lognormal
    latency_sigma: float = 0.3
    quality_mean: float = 0.85
    quality_sd: float = 0.06
    regeneration_gain: float = 0.05
    seed: int = 0
    api_key: str = ""  # when set, requests must carry it as a bearer token
    faults: Faults = field(default_factory=Faults)
    limits: LimitSettings = field(default_factory=LimitSettings)


class Simulator:
    def __init__(self, behaviour: Behaviour, references: dict[str, str]) -> None:
        self.b = behaviour
        self.references = references
        self.stats = Stats()
        self.asked: Counter[str] = Counter()
        self.quota_used = 0  # requests against the quota since it was last renewed
        self.limits = ProviderLimits(behaviour.limits, time.monotonic())

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.get_stats)
        app.router.add_get("/stats/titles", self.get_titles)
        app.router.add_post("/stats/reset", self.reset_stats)
        app.router.add_post("/quota/reset", self.reset_quota)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def get_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def get_titles(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self.asked))

    async def reset_stats(self, _request: web.Request) -> web.Response:
        self.stats = Stats()
        return web.json_response({"status": "reset"})

    async def reset_quota(self, _request: web.Request) -> web.Response:
        self.quota_used = 0
        return web.json_response({"status": "renewed", "quota": self.b.faults.quota_after})

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "qarun-sim", "object": "model"}]}
        )

    async def completions(self, request: web.Request) -> web.Response:
        stats = self.stats
        stats.arrived(time.monotonic())
        if self.b.api_key and request.headers.get("Authorization") != f"Bearer {self.b.api_key}":
            return self._error(401, "invalid_api_key", "Incorrect API key provided.", "auth")
        try:
            body = json.loads(await request.read())
            prompt = prompt_text(body["messages"])
            model = str(body.get("model", "qarun-sim"))
            max_tokens = int(body.get("max_tokens") or 16)
        except (ValueError, KeyError, TypeError):
            return self._error(400, "invalid_request_error", "Malformed request body.", "bad")
        title = prompt_title(prompt)
        nth = self.asked[title]
        self.asked[title] += 1
        rng = random.Random(f"{self.b.seed}:{title}:{nth}")
        limits = self.limits
        reserved = tokens(prompt) + max_tokens
        refused = limits.admit_rate(reserved, time.monotonic())
        if refused is not None:
            return self._refused(refused)
        stats.flight(+1)
        try:
            refused = await limits.enter()
            if refused is not None:
                return self._refused(refused)
            try:
                response = await self._respond(rng, prompt, title, model)
            finally:
                limits.leave()
            used = int(response.headers.pop("x-sim-tokens", "0"))
            limits.unused_tokens(reserved - used, time.monotonic())
            response.headers.update(limits.headers(time.monotonic()))
            return response
        finally:
            stats.flight(-1)

    def _refused(self, refused: Refusal) -> web.Response:
        response = self._error(
            refused.status, refused.code, "Rate limit reached.", refused.outcome, refused.kind
        )
        response.headers.update(refused.headers)
        return response

    async def _respond(
        self, rng: random.Random, prompt: str, title: str, model: str
    ) -> web.Response:
        f = self.b.faults
        if f.quota_after:
            self.quota_used += 1
            if self.quota_used > f.quota_after:
                return self._error(
                    429, "insufficient_quota", "You exceeded your current quota.", "quota_429"
                )
        await asyncio.sleep(self._latency(rng))
        fault = self._fault(rng)
        if fault == "429":
            return self._rate_limited("fault_429")
        if fault in ("500", "503", "400"):
            return self._error(
                int(fault),
                "server_error" if fault != "400" else "content_filter",
                "Simulated failure.",
                f"fault_{fault}",
            )
        if fault == "timeout":
            self.stats.outcomes["fault_timeout"] += 1
            await asyncio.sleep(f.hang_seconds)
        if fault == "malformed":
            self.stats.outcomes["fault_malformed"] += 1
            return web.Response(
                status=200, body=b'{"id": "x", "choices": [', content_type="application/json"
            )
        return self._answer(rng, prompt, title, model)

    def _latency(self, rng: random.Random) -> float:
        mean = self.b.latency
        if self.b.latency_dist == "exponential":
            return rng.expovariate(1 / mean) if mean > 0 else 0.0
        if self.b.latency_dist == "lognormal" and mean > 0:
            sigma = self.b.latency_sigma
            return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)
        return mean

    def _fault(self, rng: random.Random) -> str | None:
        f = self.b.faults
        draw = rng.random()
        for name, rate in (
            ("429", f.rate_429),
            ("503", f.rate_503),
            ("500", f.rate_500),
            ("400", f.rate_400),
            ("timeout", f.rate_timeout),
            ("malformed", f.rate_malformed),
        ):
            if draw < rate:
                return name
            draw -= rate
        return None

    def _answer(self, rng: random.Random, prompt: str, title: str, model: str) -> web.Response:
        regenerating = "Previous answer" in prompt
        quality = rng.gauss(self.b.quality_mean, self.b.quality_sd)
        quality += self.b.regeneration_gain if regenerating else 0.0
        reference = self.references.get(title) or f"This is a simulated answer about {title}."
        text = noisy_answer(rng, reference, min(1.0, max(0.0, quality)))
        usage = {"prompt_tokens": tokens(prompt), "completion_tokens": tokens(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.stats.outcomes["ok"] += 1
        self.stats.regenerations += regenerating
        response = web.json_response(
            {
                "id": f"chatcmpl-sim{self.stats.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": usage,
            }
        )
        response.headers["x-sim-tokens"] = str(usage["total_tokens"])  # taken off in completions
        return response

    def _rate_limited(self, outcome: str) -> web.Response:
        response = self._error(429, "rate_limit_exceeded", "Rate limit reached.", outcome)
        if self.b.faults.retry_after > 0:
            response.headers["Retry-After"] = f"{self.b.faults.retry_after:g}"
        return response

    def _error(
        self, status: int, code: str, message: str, outcome: str, kind: str = ""
    ) -> web.Response:
        self.stats.outcomes[outcome] += 1
        if not kind:
            kind = "insufficient_quota" if code == "insufficient_quota" else "server_error"
        if status in (400, 401):
            kind = "invalid_request_error"
        elif code == "rate_limit_exceeded" and kind == "server_error":
            kind = "requests"
        body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
        return web.json_response(body, status=status)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="qarun-llm-sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--dataset", default="sample", help="data set of reference answers ('' = none)")
    p.add_argument("--format", default="yahoo-csv")
    p.add_argument("--latency", type=float, default=0.5, help="mean latency in seconds")
    p.add_argument(
        "--latency-dist", choices=["constant", "exponential", "lognormal"], default="constant"
    )
    p.add_argument("--latency-sigma", type=float, default=0.3)
    p.add_argument("--quality-mean", type=float, default=0.85)
    p.add_argument("--quality-sd", type=float, default=0.06)
    p.add_argument("--seed", type=int, default=0)
    for name in ("429", "500", "503", "400", "timeout", "malformed"):
        p.add_argument(f"--rate-{name}", type=float, default=0.0, help=f"fraction of {name} faults")
    p.add_argument(
        "--quota-after",
        type=int,
        default=0,
        help="answer 429 insufficient_quota after this many requests, until POST /quota/reset",
    )
    p.add_argument(
        "--retry-after",
        type=float,
        default=0.0,
        help="Retry-After of the random 429s, seconds (default: none, no header)",
    )
    limits = p.add_argument_group("provider limits")
    limits.add_argument(
        "--capacity", type=int, default=0, help="requests worked on at once (default: unbounded)"
    )
    limits.add_argument(
        "--capacity-mode",
        choices=CAPACITY_MODES,
        default="503",
        help="beyond the capacity: refuse with 503 or 429 (no headers), or slow (queue)",
    )
    limits.add_argument("--rpm-limit", type=int, default=0, help="requests a minute (0 = none)")
    limits.add_argument("--tpm-limit", type=int, default=0, help="tokens a minute (0 = none)")
    limits.add_argument(
        "--burst-seconds",
        type=float,
        default=10.0,
        help="seconds of the per-minute rates the limits let through at once",
    )
    p.add_argument("--hang-seconds", type=float, default=300.0)
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def behaviour_from(args: argparse.Namespace, api_key: str) -> Behaviour:
    faults = Faults(
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        rate_503=args.rate_503,
        rate_400=args.rate_400,
        rate_timeout=args.rate_timeout,
        rate_malformed=args.rate_malformed,
        quota_after=args.quota_after,
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
    )
    return Behaviour(
        latency=args.latency,
        latency_dist=args.latency_dist,
        latency_sigma=args.latency_sigma,
        quality_mean=args.quality_mean,
        quality_sd=args.quality_sd,
        seed=args.seed,
        api_key=api_key,
        faults=faults,
        limits=LimitSettings(
            capacity=args.capacity,
            capacity_mode=args.capacity_mode,
            rpm_limit=args.rpm_limit,
            tpm_limit=args.tpm_limit,
            burst_seconds=args.burst_seconds,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    api_key = SimulatorSettings().api_key.get_secret_value()
    logs.setup(args.log_level, secrets=[api_key])
    sim = Simulator(behaviour_from(args, api_key), load_references(args.dataset, args.format))
    settle_heap()
    log.info(
        "LLM simulator on %s:%d, %d reference answers", args.host, args.port, len(sim.references)
    )
    web.run_app(
        sim.app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=4096,
        loop=uvloop.new_event_loop(),  # cheaper per request: more of the 2 cores left
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
