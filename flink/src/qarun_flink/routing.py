"""Where a scored answer goes: the routing rules of the job, free of Flink.

Per (run, question_id) the job keeps a KeyState in Flink keyed state. It is what
makes the loop safe to replay: an answer for an attempt already scored (a duplicate
after a restart, or a regeneration asked twice) is dropped, and a question whose
final result was emitted stays closed. The best attempt is kept in state as well as
travelling in the messages' `history`, so a worker that drops the history cannot
make the job forget the best answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from qarun_core.messages import Answer, Question, Result, ScoredAttempt


class RouteOutcome(StrEnum):
    VALIDATED = "validated"  # score >= threshold: final result
    REGENERATE = "regenerated"  # below threshold, attempts left: back to the questions topic
    EXHAUSTED = "exhausted"  # below threshold, no attempt left: best attempt as final result
    DUPLICATE = "duplicate"  # attempt already scored or question closed: dropped


@dataclass(frozen=True)
class KeyState:
    last_attempt: int = 0
    best: ScoredAttempt | None = None
    done: bool = False


@dataclass(frozen=True)
class MetricEvent:
    run: str
    attempt: int
    score: float
    improvement: float | None  # score minus the best earlier score, from attempt 2 on
    outcome: RouteOutcome


@dataclass(frozen=True)
class Decision:
    outcome: RouteOutcome
    state: KeyState
    result: Result | None = None
    question: Question | None = None
    event: MetricEvent | None = None


@dataclass(frozen=True)
class Rules:
    threshold: float
    max_attempts: int
    scorer: str
    deterministic: bool = True  # the same answer always gets the same score (not the judge)

    def final_without_state(self, attempt: int, score: float) -> bool:
        """Whether this answer's outcome cannot depend on the question's KeyState.

        A first attempt that validates (or has no regeneration left) is final whatever
        the state holds, except that the state would mark a replayed copy as a
        duplicate. With a deterministic scorer that copy yields the very same result,
        which the idempotent results topic absorbs; so the job skips the state read,
        a blocking round trip to the JVM per new key that cost ~80 % of the Python
        time (profiled). A judge may grade a copy differently: always read for it.
        """
        return (
            self.deterministic
            and attempt == 1
            and (score >= self.threshold or self.max_attempts == 1)
        )

    def feedback(self, score: float) -> str:
        # Says how far off the answer was, never what the reference says.
        return (
            f"The previous answer scored {score:.2f} ({self.scorer}), below the "
            f"{self.threshold:.2f} needed. Answer the question more completely and accurately."
        )


def decide(answer: Answer, score: float, state: KeyState, rules: Rules) -> Decision:
    if state.done or answer.attempt <= state.last_attempt:
        return Decision(RouteOutcome.DUPLICATE, state)
    answer = _with_best_in_history(answer, state.best)
    previous = answer.best
    below = score < rules.threshold
    scored = answer.scored(score, rules.feedback(score) if below else None)
    best = scored if previous is None or scored.score > previous.score else previous
    state = KeyState(last_attempt=answer.attempt, best=best)
    if not below:
        outcome = RouteOutcome.VALIDATED
        decision = Decision(
            outcome, replace(state, done=True), result=_result(answer, scored, rules)
        )
    elif answer.attempt < rules.max_attempts:
        outcome = RouteOutcome.REGENERATE
        decision = Decision(outcome, state, question=answer.regenerate(scored))
    else:
        outcome = RouteOutcome.EXHAUSTED
        result = answer.result(scored, exhausted=True, scorer=rules.scorer)
        decision = Decision(outcome, replace(state, done=True), result=result)
    improvement = None if previous is None else score - previous.score
    event = MetricEvent(answer.run, answer.attempt, score, improvement, outcome)
    return replace(decision, event=event)


def _result(answer: Answer, scored: ScoredAttempt, rules: Rules) -> Result:
    return answer.result(scored, exhausted=False, scorer=rules.scorer)


def _with_best_in_history(answer: Answer, best: ScoredAttempt | None) -> Answer:
    if best is None or any(item.attempt == best.attempt for item in answer.history):
        return answer
    history = tuple(sorted((*answer.history, best), key=lambda item: item.attempt))
    return answer.model_copy(update={"history": history})
