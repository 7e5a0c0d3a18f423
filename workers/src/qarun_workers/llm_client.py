"""One LLM call through the `openai` client, and what a failure means.

Each answer and each failure carries the provider's rate-limit headers (`Pacing`):
`x-ratelimit-limit-*` say the requests and tokens a minute it takes, and a 429 with
Retry-After or `x-ratelimit-*` headers is a rate limit to pace by (`Failure.paced`),
not a sign of overload.

The client uses the aiohttp transport (`DefaultAioHttpClient`): measured on 2 cores,
the default httpx transport collapses as concurrency grows (35 req/s at 1,000 in
flight) where aiohttp keeps 700+. The client's own retries are off; failures are
classified and retried through the retry tiers instead, without blocking the worker.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx2
import openai
from openai import AsyncOpenAI, DefaultAioHttpClient

from qarun_core.messages import ErrorClass, Question
from qarun_workers.settings import LLMSettings

SYSTEM_PROMPT = (
    "You answer questions from a community Q&A site. Give an accurate, complete, clear "
    "and concise answer in a few sentences."
)
QUOTA_CODES = ("insufficient_quota", "quota_exceeded", "billing_hard_limit_reached")
QUOTA_WORDS = ("quota", "per day", "daily limit", "billing")
PERMANENT_STATUSES = (400, 401, 403, 404, 422)
TRANSIENT = {
    openai.APITimeoutError: "timeout",
    openai.APIConnectionError: "connection error",
    openai.APIResponseValidationError: "malformed response",
}


DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
SECONDS_PER = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@dataclass(frozen=True)
class Pacing:
    """What a response's rate-limit headers say; 0 (or -1 for remaining) = not sent."""

    limit_requests: int = 0  # per minute
    limit_tokens: int = 0
    remaining_requests: int = -1
    remaining_tokens: int = -1
    reset_requests: float = 0.0  # seconds
    reset_tokens: float = 0.0
    retry_after: float = 0.0

    @property
    def sent(self) -> bool:
        return self != NO_PACING

    @property
    def exhausted(self) -> bool:
        """A limit is used up: nothing more is taken until it refills."""
        return self.remaining_requests == 0 or self.remaining_tokens == 0

    def wait(self) -> float:
        """Seconds until the provider takes a request again: Retry-After, else for a used-up
        limit the time one request takes to come back (the reset is until it is whole)."""
        if self.retry_after > 0:
            return self.retry_after
        waits = [0.0]
        if self.remaining_requests == 0:
            one = 60 / self.limit_requests if self.limit_requests else self.reset_requests
            waits.append(min(one, self.reset_requests or one))
        if self.remaining_tokens == 0:
            waits.append(self.reset_tokens)
        return max(waits)


NO_PACING = Pacing()


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    pacing: Pacing = NO_PACING


@dataclass(frozen=True)
class Failure(Exception):  # noqa: N818 - an outcome, raised only to leave the call
    error: ErrorClass
    reason: str  # short and secret-free: status and provider error code
    retry_after: float = 0.0
    latency_s: float = 0.0  # from sending to the failure
    pacing: Pacing = field(default=NO_PACING)
    paced: bool = False  # a rate limit that says when to come back: pace by rate, no overload


def make_client(settings: LLMSettings, api_key: str) -> AsyncOpenAI:
    connections = settings.max_concurrency + 16
    http = DefaultAioHttpClient(
        limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=connections),
        timeout=settings.timeout_seconds,
    )
    return AsyncOpenAI(
        api_key=api_key or "unused",  # local endpoints need none; the client insists on one
        base_url=settings.base_url,
        max_retries=0,
        timeout=settings.timeout_seconds,
        http_client=http,
    )


def prompt(question: Question) -> str:
    """The user message; its first line names the question (the simulator keys on it)."""
    lines = [f"Question: {question.title}"]
    if question.content:
        lines.append(question.content)
    best = question.best
    if best is not None:
        lines += [
            "",
            f"Previous answer (score {best.score:.2f}): {best.answer}",
            f"Feedback: {question.feedback or 'be more accurate and complete'}",
            "Write a better answer.",
        ]
    return "\n".join(lines)


def estimate_tokens(text: str, max_tokens: int) -> int:
    """An upper-bound guess before the call: ~3 characters a token plus the answer cap."""
    return len(SYSTEM_PROMPT) // 3 + len(text) // 3 + 8 + max_tokens


async def ask(client: AsyncOpenAI, settings: LLMSettings, user_prompt: str) -> Completion:
    """One chat completion; raises Failure with its error class.

    The request goes through the client's own `post` (its transport, auth headers and
    typed status errors) with a plain body and a raw response: the typed
    `chat.completions.create` spends about as much CPU again on transforming the
    request and building response models (measured 0.97 against 1.89 ms a call), and
    CPU is what bounds a worker at thousands of calls in flight.
    """
    body = {
        "model": settings.model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_prompt},
        ],
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
    }
    started = time.perf_counter()
    try:
        response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
        completion = completion_of(json.loads(response.content), settings.model, started)
    except openai.OpenAIError as error:
        raise replace(classify(error), latency_s=time.perf_counter() - started) from None
    except (ValueError, TypeError, KeyError, IndexError, httpx2.HTTPError) as error:
        raise Failure(
            ErrorClass.OVERLOAD,
            f"malformed response: {type(error).__name__}",
            latency_s=time.perf_counter() - started,
        ) from None
    return replace(completion, pacing=pacing_of(response.headers))


def completion_of(data: dict[str, Any], model: str, started: float) -> Completion:
    text = data["choices"][0]["message"]["content"]
    if not isinstance(text, str):
        raise ValueError("empty response")
    usage = data.get("usage") or {}
    return Completion(
        text=text,
        model=str(data.get("model") or model),
        latency_ms=(time.perf_counter() - started) * 1000,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def classify(error: openai.OpenAIError) -> Failure:
    """overload (429 rate limit, 5xx, timeout) | quota (429 quota) | permanent (4xx, policy)."""
    if not isinstance(error, openai.APIStatusError):
        # timeouts, refused connections, malformed bodies: transient by nature
        return Failure(ErrorClass.OVERLOAD, TRANSIENT.get(type(error), type(error).__name__))
    status = error.status_code
    code = str(error.code or getattr(error, "type", "") or "")
    reason = f"{status} {code}".strip()
    pacing = pacing_of(error.response.headers)
    if status == 429:
        if code in QUOTA_CODES or any(w in str(error.message).lower() for w in QUOTA_WORDS):
            return Failure(ErrorClass.QUOTA, reason, pacing.retry_after)
        return Failure(ErrorClass.OVERLOAD, reason, pacing.wait(), pacing=pacing, paced=pacing.sent)
    if status in PERMANENT_STATUSES:
        return Failure(ErrorClass.PERMANENT, reason)
    return Failure(ErrorClass.OVERLOAD, reason, pacing.retry_after)


def pacing_of(headers: Mapping[str, str]) -> Pacing:
    """The OpenAI-style rate-limit headers (also sent by vLLM, LiteLLM and most gateways)."""
    if not any(name in headers for name in ("retry-after", "retry-after-ms")) and not any(
        name.startswith("x-ratelimit-") for name in headers
    ):
        return NO_PACING
    return Pacing(
        limit_requests=int(number(headers.get("x-ratelimit-limit-requests"), 0)),
        limit_tokens=int(number(headers.get("x-ratelimit-limit-tokens"), 0)),
        remaining_requests=int(number(headers.get("x-ratelimit-remaining-requests"), -1)),
        remaining_tokens=int(number(headers.get("x-ratelimit-remaining-tokens"), -1)),
        reset_requests=duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens=duration(headers.get("x-ratelimit-reset-tokens")),
        retry_after=retry_after_of(headers),
    )


def number(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default


def duration(text: str | None) -> float:
    """Seconds of "1.5s", "6m0s", "20ms" or a plain number; 0 when absent or unreadable."""
    if not text:
        return 0.0
    plain = number(text, -1.0)
    if plain >= 0:
        return plain
    parts = DURATION_PART.findall(text)
    return sum(float(value) * SECONDS_PER[unit] for value, unit in parts)


def retry_after_of(headers: Mapping[str, str]) -> float:
    """Seconds from a Retry-After (or retry-after-ms) header; 0 when absent or a date."""
    if "retry-after-ms" in headers:
        return max(0.0, number(headers["retry-after-ms"], 0.0) / 1000)
    return max(0.0, number(headers.get("retry-after"), 0.0))
