"""The one interface every scorer implements, usable with or without Flink."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Pair:
    """What a scorer compares: the model's answer against the data set's reference."""

    question: str
    answer: str
    reference: str


@runtime_checkable
class Scorer(Protocol):
    """Scores answers in [0, 1]; higher means closer to the reference answer."""

    name: str

    def score(self, pair: Pair) -> float: ...

    def score_many(self, pairs: Sequence[Pair]) -> list[float]: ...


@runtime_checkable
class AsyncScorer(Scorer, Protocol):
    """A scorer that waits on I/O (an LLM); the job runs it with Flink's async I/O."""

    async def ascore(self, pair: Pair) -> float: ...


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))
