"""An OpenAI-compatible LLM simulator for tests, demos and benchmarks.

`POST /v1/chat/completions` answers after a latency drawn from a configurable
distribution. When the question's title is in the loaded data set, the answer is
derived from the reference answer with controlled noise: a quality q ~ N(mean, sd)
keeps about a fraction q of the reference words and pads with filler, so lexical
scores spread like the seeds' 0.85 +- 0.06; a regeneration (a prompt carrying
feedback) answers a little better. Faults are injected at configured rates: 429 rate
limit with Retry-After, 500, 503, timeouts (the request hangs), malformed bodies,
quota exhaustion after N requests (until `POST /quota/reset`, as a provider's quota
renews), and a requests-per-minute limit of its own.

Every random decision comes from a generator seeded with (seed, prompt title, how
many times that title was asked), so a run repeats whatever the arrival order.
`GET /stats` returns counters for tests, `GET /stats/titles` how many times each title
was asked (a question asked twice is a duplicate call); `/healthz` for probes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import uvloop
from aiohttp import web

from qarun_workers import logs
from qarun_workers.dataset import DatasetError, read_rows
from qarun_workers.runtime import settle_heap

log = logging.getLogger(__name__)

FILLER = [
    "generally",
    "also",
    "basically",
    "often",
    "indeed",
    "usually",
    "perhaps",
    "notably",
    "simply",
    "clearly",
    "really",
    "quite",
    "mostly",
    "certainly",
    "probably",
]
TITLE_PREFIX = "Question:"  # the first line of the LLM worker's user prompt


@dataclass
class Faults:
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_400: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    quota_after: int = 0  # every request after this many gets 429 insufficient_quota; 0 = never
    rpm_limit: int = 0  # its own requests-per-minute limit (429); 0 = none
    retry_after: float = 1.0
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


class Stats:
    """Counters read by tests: outcomes, and the most requests seen in any 60 s window."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.regenerations = 0  # answers ("ok") to a prompt that carried a previous answer
        self.requests = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.max_per_minute = 0
        self._window: deque[float] = deque()

    def arrived(self, now: float) -> int:
        self.requests += 1
        self._window.append(now)
        while self._window and self._window[0] <= now - 60.0:
            self._window.popleft()
        self.max_per_minute = max(self.max_per_minute, len(self._window))
        return len(self._window)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "max_per_minute": self.max_per_minute,
            "outcomes": dict(self.outcomes),
            "regenerations": self.regenerations,
        }


class Simulator:
    def __init__(self, behaviour: Behaviour, references: dict[str, str]) -> None:
        self.b = behaviour
        self.references = references
        self.stats = Stats()
        self.asked: Counter[str] = Counter()
        self.quota_used = 0  # requests against the quota since it was last renewed

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
        in_window = stats.arrived(time.monotonic())
        if self.b.api_key and request.headers.get("Authorization") != f"Bearer {self.b.api_key}":
            return self._error(401, "invalid_api_key", "Incorrect API key provided.", "auth")
        try:
            body = json.loads(await request.read())
            prompt = prompt_text(body["messages"])
            model = str(body.get("model", "qarun-sim"))
        except (ValueError, KeyError, TypeError):
            return self._error(400, "invalid_request_error", "Malformed request body.", "bad")
        title = prompt_title(prompt)
        nth = self.asked[title]
        self.asked[title] += 1
        rng = random.Random(f"{self.b.seed}:{title}:{nth}")
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            return await self._respond(rng, prompt, title, model, in_window)
        finally:
            stats.in_flight -= 1

    async def _respond(
        self, rng: random.Random, prompt: str, title: str, model: str, in_window: int
    ) -> web.Response:
        f = self.b.faults
        if f.rpm_limit and in_window > f.rpm_limit:
            return self._rate_limited("limit_429")
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
        return web.json_response(
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

    def _rate_limited(self, outcome: str) -> web.Response:
        response = self._error(429, "rate_limit_exceeded", "Rate limit reached.", outcome)
        response.headers["Retry-After"] = f"{self.b.faults.retry_after:g}"
        return response

    def _error(self, status: int, code: str, message: str, outcome: str) -> web.Response:
        self.stats.outcomes[outcome] += 1
        kind = "insufficient_quota" if code == "insufficient_quota" else "server_error"
        if status in (400, 401):
            kind = "invalid_request_error"
        elif code == "rate_limit_exceeded":
            kind = "requests"
        body = {"error": {"message": message, "type": kind, "code": code, "param": None}}
        return web.json_response(body, status=status)


def prompt_text(messages: Sequence[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")


def prompt_title(prompt: str) -> str:
    for line in prompt.splitlines():
        if line.startswith(TITLE_PREFIX):
            return line[len(TITLE_PREFIX) :].strip()
    return prompt[:200]


def tokens(text: str) -> int:
    """Roughly what a BPE tokenizer would count: about 4 characters a token."""
    return max(1, (len(text) + 3) // 4)


def noisy_answer(rng: random.Random, reference: str, quality: float) -> str:
    """Keep about `quality` of the reference words, in order, and pad with filler words."""
    words = reference.split()
    kept = [w for w in words if rng.random() < quality]
    filler = [rng.choice(FILLER) for _ in range(round(len(words) * (1 - quality)))]
    for word in filler:
        kept.insert(rng.randrange(len(kept) + 1), word)
    return " ".join(kept) or "I am not sure."


def load_references(source: str, fmt: str) -> dict[str, str]:
    if not source:
        return {}
    try:
        return {row.title: row.best_answer for row in read_rows(source, fmt)}
    except DatasetError as error:
        raise SystemExit(f"qarun-llm-sim: {error}") from None


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
    p.add_argument(
        "--api-key-env",
        default="",
        help="name of an env var holding the key clients must send (default: none)",
    )
    for name in ("429", "500", "503", "400", "timeout", "malformed"):
        p.add_argument(f"--rate-{name}", type=float, default=0.0, help=f"fraction of {name} faults")
    p.add_argument(
        "--quota-after",
        type=int,
        default=0,
        help="answer 429 insufficient_quota after this many requests, until POST /quota/reset",
    )
    p.add_argument("--rpm-limit", type=int, default=0)
    p.add_argument("--retry-after", type=float, default=1.0)
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
        rpm_limit=args.rpm_limit,
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
    )


def main(argv: Sequence[str] | None = None) -> int:
    import os  # noqa: PLC0415 - only the entry point reads the environment

    args = parse_args(argv)
    api_key = os.environ.get(args.api_key_env, "") if args.api_key_env else ""
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
