"""The scoring job's functions: Settle (plain Python) and the Flink adapters around it.

Settle parses, scores and settles a batch of raw answers and is tested without Flink;
SettleBatch is its pandas UDF, JudgeAnswers the judge's async I/O, Route the keyed
routing, MetricsMessage the formatter of a metrics window row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream.functions import (
    AsyncFunction,
    KeyedProcessFunction,
    MapFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table.udf import ScalarFunction

from qarun_core.messages import Answer, DeadLetter, DeadLetterReason, PoisonMessageError
from qarun_core.spec import ScoringMethod
from qarun_flink.keyed_state import dump_state, load_state
from qarun_flink.metrics import RunMetrics
from qarun_flink.params import JobParams
from qarun_flink.records import DLQ, EVENTS, QUESTIONS, SETTLED_FIELDS, Dest
from qarun_flink.routing import Decision, KeyState, MetricEvent, RouteOutcome, Rules, decide
from qarun_flink.scorers import AsyncScorer, Pair, Scorer, make_scorer


class Settle:
    """Raw answers → where each goes: parsed, scored and settled when final at once.

    Plain Python (tested without Flink); SettleBatch is its pandas UDF adapter. A
    batch is scored in one scorer call (score_many), so the embedding model encodes
    whole batches.
    """

    def __init__(self, params: JobParams, scorer: Scorer | None) -> None:
        self.run = params.run
        self.topic = params.answers_topic
        self.rules = _rules(params)
        self.scorer = scorer  # None: scored later (judge)

    def settle(
        self,
        keys: Sequence[bytes | None],
        payloads: Sequence[bytes | None],
        partitions: Sequence[int],
        offsets: Sequence[int],
    ) -> list[tuple[Any, ...]]:
        parsed: list[Answer | tuple[Any, ...]] = [
            self._parse(*record) for record in zip(keys, payloads, partitions, offsets, strict=True)
        ]
        answers = [item for item in parsed if isinstance(item, Answer)]
        scores = iter(self._scores(answers))
        return [
            self._route(item, next(scores), payload) if isinstance(item, Answer) else item
            for item, payload in zip(parsed, payloads, strict=True)
        ]

    def _scores(self, answers: list[Answer]) -> list[float]:
        if self.scorer is None:
            return [math.nan] * len(answers)
        return self.scorer.score_many([_pair_of(answer) for answer in answers])

    def _parse(
        self, key: bytes | None, payload: bytes | None, partition: int, offset: int
    ) -> Answer | tuple[Any, ...]:
        try:
            answer = Answer.from_bytes(payload)
            if answer.run != self.run:
                raise PoisonMessageError(
                    DeadLetterReason.BAD_SCHEMA,
                    f"run {answer.run!r} on a topic of run {self.run!r}",
                )
        except PoisonMessageError as poison:
            letter = DeadLetter.of(
                run=self.run,
                reason=poison.reason,
                detail=poison.detail,
                payload=payload,
                key=key,
                topic=self.topic,
                partition=int(partition),
                offset=int(offset),
            )
            return (Dest.DLQ, letter.question_id, letter.to_bytes(), *_NO_EVENT)
        return answer

    def _route(self, answer: Answer, score_: float, payload: bytes | None) -> tuple[Any, ...]:
        if not self.rules.final_without_state(answer.attempt, score_):
            key = f"{answer.run}/{answer.question_id}"
            return (Dest.KEYED, key, payload, score_, *_NO_EVENT[1:])
        # Final at once: no state to read, and none to keep (see Rules).
        decision = decide(answer, score_, KeyState(), self.rules)
        result, event = decision.result, decision.event
        assert result is not None and event is not None  # a final decision has both
        return (
            Dest.RESULTS,
            result.question_id,
            result.to_bytes(),
            event.score,
            event.run,
            event.attempt,
            event.improvement,
            event.outcome.value,
        )


# score, run, attempt, improvement, outcome of a row that is no final result
_NO_EVENT: tuple[Any, ...] = (None, None, None, None, None)


class SettleBatch(ScalarFunction):  # type: ignore[misc]
    def __init__(self, params: JobParams) -> None:
        self.params = params
        self.settler: Settle | None = None

    def open(self, function_context: Any) -> None:
        # The embedding model loads once per worker; the judge scores after Settle.
        scored_here = self.params.scorer is not ScoringMethod.JUDGE
        scorer = make_scorer(self.params.scorer.value) if scored_here else None
        self.settler = Settle(self.params, scorer)

    def eval(
        self, keys: pd.Series, payloads: pd.Series, partitions: pd.Series, offsets: pd.Series
    ) -> pd.DataFrame:
        assert self.settler is not None
        rows = self.settler.settle(
            keys.tolist(), payloads.tolist(), partitions.tolist(), offsets.tolist()
        )
        return pd.DataFrame.from_records(rows, columns=[name for name, _ in SETTLED_FIELDS])


def _rules(params: JobParams) -> Rules:
    return Rules(
        params.threshold,
        params.max_attempts,
        params.scorer.value,
        deterministic=params.scorer is not ScoringMethod.JUDGE,
    )


def _pair(answer_json: str | bytes) -> Pair:
    return _pair_of(Answer.model_validate_json(answer_json))


def _pair_of(answer: Answer) -> Pair:
    question = f"{answer.title}\n{answer.content}".strip()
    return Pair(question=question, answer=answer.answer, reference=answer.best_answer)


class JudgeAnswers(AsyncFunction):  # type: ignore[misc]
    def __init__(self, params: JobParams) -> None:
        self.options = {
            "llm_base_url": params.llm_base_url,
            "llm_model": params.llm_model,
            "timeout": params.judge_timeout_seconds,
        }
        self.scorer: AsyncScorer | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        scorer = make_scorer("judge", **self.options)  # type: ignore[arg-type]
        assert isinstance(scorer, AsyncScorer)
        self.scorer = scorer

    async def async_invoke(self, value: tuple[str, str, float, str]) -> list[Any]:
        assert self.scorer is not None
        try:
            score_ = await self.scorer.ascore(_pair(value[1]))
        except Exception as error:  # the scorer gave up: a dead letter, not a failed job
            return [(value[0], value[1], math.nan, f"{type(error).__name__}: {error}"[:500])]
        return [(value[0], value[1], score_, "")]

    def timeout(self, value: tuple[str, str, float, str]) -> list[Any]:
        return [(value[0], value[1], math.nan, "judge timed out")]


class Route(KeyedProcessFunction):  # type: ignore[misc]
    """Applies routing.decide with the question's KeyState from Flink keyed state."""

    def __init__(self, params: JobParams) -> None:
        self.rules = _rules(params)
        self.run = params.run
        self.topic = params.answers_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("question", Types.STRING()))

    def process_element(self, value: tuple[str, str, float, str], ctx: Any) -> Iterator[Any]:
        key, answer_json, score_, error = value
        if error:
            yield DLQ, self._dead_letter(key, answer_json, error)
            return
        answer = Answer.model_validate_json(answer_json)
        if self.rules.final_without_state(answer.attempt, score_):
            # The judge scores after Settle, so its answers are settled here (never
            # final without state today: Rules.deterministic is False for it).
            yield from _emit(decide(answer, score_, KeyState(), self.rules))
            return
        stored = self.state.value()
        state = load_state(stored) if stored else KeyState()
        decision = decide(answer, score_, state, self.rules)
        if decision.outcome is RouteOutcome.DUPLICATE:
            return
        self.state.update(dump_state(decision.state))
        yield from _emit(decision)

    def _dead_letter(self, key: str, answer_json: str, error: str) -> Row:
        letter = DeadLetter.of(
            run=self.run,
            reason=DeadLetterReason.PERMANENT_ERROR,
            detail=f"scoring failed: {error}",
            payload=answer_json.encode(),
            key=key.partition("/")[2].encode(),
            topic=self.topic,
        )
        return Row(k=letter.question_id, v=letter.to_bytes().decode())


def _emit(decision: Decision) -> Iterator[Any]:
    if decision.result is not None:
        yield Row(k=decision.result.question_id, v=decision.result.to_bytes().decode())
    if decision.question is not None:
        question = decision.question
        yield QUESTIONS, Row(k=question.question_id, v=question.to_bytes().decode())
    if decision.event is not None:
        yield EVENTS, _event_row(decision.event)


def _event_row(event: MetricEvent) -> Row:
    return Row(event.run, event.attempt, event.score, event.improvement, event.outcome.value)


class MetricsMessage(MapFunction):  # type: ignore[misc]
    """One aggregated window row of run_metrics → the run's metrics record."""

    def __init__(self, params: JobParams) -> None:
        self.max_attempts = params.max_attempts

    def map(self, row: Row) -> Row:
        columns = row.as_dict()
        metrics = RunMetrics.from_window(columns, self.max_attempts)
        run, start, end = columns["run"], columns["window_start"], columns["window_end"]
        return Row(k=run, v=metrics.to_json(run, _epoch_ms(start), _epoch_ms(end)))


def _epoch_ms(moment: datetime) -> int:
    # A naive window bound is UTC wall-clock time (table.local-time-zone, build_job).
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)
