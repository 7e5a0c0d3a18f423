"""LLM-as-judge with a weighted five-criterion rubric, through any OpenAI-compatible endpoint.

The judge returns one JSON object with an integer 0-10 per criterion; pydantic
validates it and the weighted sum (accuracy 40, completeness 25, clarity 20,
concision 10, usefulness 5) divided by 10 is the score in [0, 1]. Transport errors
(429, 5xx, timeouts) are retried by the openai client itself; a reply that is not
valid rubric JSON is asked for again up to `attempts` times, then JudgeError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from qarun_flink.scorers.base import Pair, clamp01

WEIGHTS = {"accuracy": 40, "completeness": 25, "clarity": 20, "concision": 10, "usefulness": 5}

SYSTEM_PROMPT = """You grade an answer to a question against a reference answer.
Score each criterion from 0 (worst) to 10 (best):
- accuracy: agrees with the reference, no wrong facts (weight 40%)
- completeness: covers the reference's key points (25%)
- clarity: easy to follow (20%)
- concision: no padding or repetition (10%)
- usefulness: helps the person who asked (5%)
Reply with one JSON object and nothing else, for example:
{"accuracy": 7, "completeness": 6, "clarity": 8, "concision": 9, "usefulness": 7,
 "feedback": "one sentence on what to improve"}"""


class Rubric(BaseModel):
    model_config = ConfigDict(extra="ignore")

    accuracy: int = Field(ge=0, le=10)
    completeness: int = Field(ge=0, le=10)
    clarity: int = Field(ge=0, le=10)
    concision: int = Field(ge=0, le=10)
    usefulness: int = Field(ge=0, le=10)
    feedback: str = ""

    def score(self) -> float:
        total = sum(weight * getattr(self, name) for name, weight in WEIGHTS.items())
        return clamp01(total / (10 * sum(WEIGHTS.values())))


class JudgeError(RuntimeError):
    """The judge gave no valid rubric after every attempt."""


def user_prompt(pair: Pair) -> str:
    return (
        f"Question:\n{pair.question}\n\nReference answer:\n{pair.reference}\n\n"
        f"Answer to grade:\n{pair.answer}"
    )


class JudgeScorer:
    name = "judge"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        attempts: int = 3,
        timeout: float = 60.0,
        transport_retries: int = 4,
    ) -> None:
        self.model = model
        self.attempts = attempts
        options = {"base_url": base_url, "api_key": api_key or "unused", "timeout": timeout}
        self._sync = openai.OpenAI(max_retries=transport_retries, **options)  # type: ignore[arg-type]
        self._async = openai.AsyncOpenAI(max_retries=transport_retries, **options)  # type: ignore[arg-type]

    def _request(self, pair: Pair) -> dict[str, object]:
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(pair)},
            ],
            "response_format": {"type": "json_object"},
            "temperature": 0,
        }

    def rubric(self, pair: Pair) -> Rubric:
        problem = ""
        for _ in range(self.attempts):
            reply = self._sync.chat.completions.create(**self._request(pair))  # type: ignore[call-overload]
            try:
                return Rubric.model_validate_json(reply.choices[0].message.content or "")
            except ValidationError as error:
                problem = _first_problem(error)
        raise JudgeError(f"no valid rubric after {self.attempts} attempts: {problem}")

    async def arubric(self, pair: Pair) -> Rubric:
        problem = ""
        for _ in range(self.attempts):
            reply = await self._async.chat.completions.create(**self._request(pair))  # type: ignore[call-overload]
            try:
                return Rubric.model_validate_json(reply.choices[0].message.content or "")
            except ValidationError as error:
                problem = _first_problem(error)
        raise JudgeError(f"no valid rubric after {self.attempts} attempts: {problem}")

    def score(self, pair: Pair) -> float:
        return self.rubric(pair).score()

    async def ascore(self, pair: Pair) -> float:
        return (await self.arubric(pair)).score()

    def score_many(self, pairs: Sequence[Pair]) -> list[float]:
        async def all_of() -> list[float]:
            return list(await asyncio.gather(*(self.ascore(p) for p in pairs)))

        return asyncio.run(all_of())


def _first_problem(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    return f"{'.'.join(map(str, first['loc'])) or 'reply'}: {first['msg']}"
