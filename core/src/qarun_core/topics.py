"""Names of a run's Kafka topics, `qarun.<run>.<stream>`, and the retry delay tiers.

A delayed retry waits in the tier topic whose delay is the smallest one at least as
long as the wanted delay; the exact due time travels in the message headers. Within a
tier, due times are then nearly in publish order, so the retry consumer can pause a
partition until its head is due without holding back much behind it (at most the gap
between that tier and the one below).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "qarun"


class Stream(StrEnum):
    QUESTIONS = "questions"
    ANSWERS = "answers"
    RESULTS = "results"
    METRICS = "metrics"
    DLQ = "dlq"


@dataclass(frozen=True, order=True)
class RetryTier:
    """One delay tier; its stream name is `retry-<delay>` such as `retry-30s`, `retry-5m`."""

    delay_seconds: int

    @property
    def stream(self) -> str:
        return f"retry-{format_delay(self.delay_seconds)}"


DEFAULT_TIERS: tuple[RetryTier, ...] = tuple(RetryTier(s) for s in (2, 10, 60, 300))


def format_delay(seconds: int) -> str:
    """2 -> "2s", 60 -> "1m", 300 -> "5m", 7200 -> "2h"; uneven values stay in seconds."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def parse_delay(text: str) -> int:
    """The inverse of format_delay: "30s" -> 30, "5m" -> 300, "1h" -> 3600."""
    match = re.fullmatch(r"(\d+)([smh])", text.strip())
    if match is None:
        raise ValueError(f"not a delay such as 30s, 5m or 1h: {text!r}")
    return int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]


def tiers_from(delays: Iterable[str | int]) -> tuple[RetryTier, ...]:
    """Tiers from "2s,10s,1m"-style items, sorted and without duplicates."""
    seconds = {d if isinstance(d, int) else parse_delay(d) for d in delays}
    if not seconds or min(seconds) <= 0:
        raise ValueError("retry tiers need at least one positive delay")
    return tuple(RetryTier(s) for s in sorted(seconds))


def tier_for(delay_seconds: float, tiers: Sequence[RetryTier] = DEFAULT_TIERS) -> RetryTier:
    """The smallest tier at least as long as the delay (the longest one beyond them all)."""
    for tier in sorted(tiers):
        if tier.delay_seconds >= delay_seconds:
            return tier
    return max(tiers)


def topic(run: str, stream: str) -> str:
    return f"{PREFIX}.{run}.{stream}"


@dataclass(frozen=True)
class RunTopics:
    """Every topic of one run."""

    run: str
    tiers: tuple[RetryTier, ...] = DEFAULT_TIERS

    @property
    def questions(self) -> str:
        return topic(self.run, Stream.QUESTIONS)

    @property
    def answers(self) -> str:
        return topic(self.run, Stream.ANSWERS)

    @property
    def results(self) -> str:
        return topic(self.run, Stream.RESULTS)

    @property
    def metrics(self) -> str:
        return topic(self.run, Stream.METRICS)

    @property
    def dlq(self) -> str:
        return topic(self.run, Stream.DLQ)

    def retry(self, tier: RetryTier) -> str:
        return topic(self.run, tier.stream)

    @property
    def retries(self) -> list[str]:
        return [self.retry(t) for t in self.tiers]

    def all(self) -> list[str]:
        streams = [self.questions, self.answers, self.results, self.metrics, self.dlq]
        return streams + self.retries


def run_of(topic_name: str) -> str:
    """The run a topic belongs to: "qarun.demo.questions" -> "demo"."""
    parts = topic_name.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise ValueError(f"not a QARun topic: {topic_name!r}")
    return parts[1]
