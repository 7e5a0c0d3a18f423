"""The simulator's model of a provider's limits: capacity, and requests and tokens a minute.

* **Capacity**: at most `capacity` requests are worked on at once. One more is either
  refused at once (503 `server_overloaded`, or 429 without pacing headers, as an
  inference server with a full batch does) or, in `slow` mode, waits for a free slot
  so that latency rises with the queue.
* **Requests and tokens per minute**: token buckets refilled continuously at the
  limit's rate and holding `burst_seconds` of it, as hosted APIs enforce a minute's
  limit over shorter periods. A request takes one request and its prompt tokens plus
  `max_tokens` on arrival; what the answer did not use is given back. A request that
  does not fit is answered 429 `rate_limit_exceeded` with Retry-After (and
  retry-after-ms) saying when it would. Every response carries OpenAI's
  `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers
  (reset: until the bucket is full again).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

CAPACITY_MODES = ("503", "429", "slow")


@dataclass
class LimitSettings:
    capacity: int = 0  # requests worked on at once; 0 = unbounded
    capacity_mode: str = "503"  # 503 | 429 | slow
    rpm_limit: int = 0  # requests a minute; 0 = none
    tpm_limit: int = 0  # tokens a minute; 0 = none
    burst_seconds: float = 10.0  # how much of the rate a bucket holds


class Bucket:
    """One per-minute limit as a continuously refilled token bucket."""

    def __init__(self, per_minute: int, burst_seconds: float, now: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.size = max(1.0, self.rate * burst_seconds)
        self.level = self.size
        self.ts = now

    def _refill(self, now: float) -> None:
        self.level = min(self.size, self.level + (now - self.ts) * self.rate)
        self.ts = now

    def wait(self, n: float, now: float) -> float:
        """Seconds until `n` fit; 0 when they fit now."""
        self._refill(now)
        need = min(n, self.size)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, n: float) -> None:
        self.level -= n

    def give(self, n: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.size, self.level + n)

    def headers(self, kind: str, now: float) -> dict[str, str]:
        self._refill(now)
        return {
            f"x-ratelimit-limit-{kind}": str(self.per_minute),
            f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(self.level))),
            f"x-ratelimit-reset-{kind}": duration_text((self.size - self.level) / self.rate),
        }


def duration_text(seconds: float) -> str:
    """OpenAI's style: "20ms", "1.5s", "6m0s"."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


@dataclass(frozen=True)
class Refusal:
    outcome: str  # the /stats outcome
    status: int
    code: str
    kind: str  # the error body's type
    headers: dict[str, str]


class ProviderLimits:
    def __init__(self, settings: LimitSettings, now: float) -> None:
        if settings.capacity_mode not in CAPACITY_MODES:
            raise ValueError(f"capacity mode must be one of {', '.join(CAPACITY_MODES)}")
        self.s = settings
        self.requests = (
            Bucket(settings.rpm_limit, settings.burst_seconds, now)
            if (settings.rpm_limit)
            else None
        )
        self.tokens = (
            Bucket(settings.tpm_limit, settings.burst_seconds, now)
            if (settings.tpm_limit)
            else None
        )
        self.serving = 0
        self._slots = asyncio.Semaphore(settings.capacity) if settings.capacity else None

    def headers(self, now: float) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.requests is not None:
            found |= self.requests.headers("requests", now)
        if self.tokens is not None:
            found |= self.tokens.headers("tokens", now)
        return found

    def admit_rate(self, tokens: int, now: float) -> Refusal | None:
        """Take one request and `tokens` from the buckets, or say when they would fit."""
        waits = [
            (bucket.wait(n, now), kind)
            for bucket, n, kind in ((self.requests, 1, "requests"), (self.tokens, tokens, "tokens"))
            if bucket is not None
        ]
        wait, kind = max(waits, default=(0.0, ""))
        if wait > 0:
            headers = self.headers(now) | {
                "retry-after": str(math.ceil(wait)),
                "retry-after-ms": str(math.ceil(wait * 1000)),
            }
            return Refusal("limit_429", 429, "rate_limit_exceeded", kind, headers)
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(tokens)
        return None

    def unused_tokens(self, tokens: int, now: float) -> None:
        if self.tokens is not None and tokens > 0:
            self.tokens.give(tokens, now)

    async def enter(self) -> Refusal | None:
        """A slot in the provider's capacity; a refusal when it is full (unless slow)."""
        if self._slots is None:
            return None
        if self.s.capacity_mode != "slow" and self._slots.locked():
            status = int(self.s.capacity_mode)
            code = "server_overloaded" if status == 503 else "engine_overloaded"
            return Refusal(f"capacity_{status}", status, code, "server_error", {})
        await self._slots.acquire()
        self.serving += 1
        return None

    def leave(self) -> None:
        if self._slots is not None:
            self.serving -= 1
            self._slots.release()
