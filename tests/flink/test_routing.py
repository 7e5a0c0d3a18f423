"""Routing rules, keyed-state round trip, run metrics and job parameters, without Flink."""

from __future__ import annotations

import json
import math
import re

import pytest

from qarun_core.messages import Answer, Question
from qarun_flink import job
from qarun_flink.functions import Settle
from qarun_flink.keyed_state import dump_state, load_state
from qarun_flink.metrics import PER_ATTEMPT_MEASURES, RunMetrics, attempt_column, outcome_column
from qarun_flink.params import ParamError, parse
from qarun_flink.routing import KeyState, RouteOutcome, Rules, decide
from qarun_flink.scorers.lexical import LexicalScorer
from qarun_flink.sql import metrics_window_sql

RULES = Rules(threshold=0.75, max_attempts=3, scorer="lexical")


def answer(attempt: int = 1, text: str = "an answer", **fields: object) -> Answer:
    question = Question(run="r", question_id="q1", title="t", best_answer="ref", attempt=attempt)
    return Answer.for_question(question, answer=text, model="m", latency_ms=1.0, **fields)


def test_score_at_threshold_validates_and_closes_the_question() -> None:
    decision = decide(answer(), 0.75, KeyState(), RULES)
    assert decision.outcome is RouteOutcome.VALIDATED
    assert decision.result is not None and not decision.result.exhausted
    assert decision.state.done
    assert decide(answer(2), 0.9, decision.state, RULES).outcome is RouteOutcome.DUPLICATE


def test_below_threshold_regenerates_with_history_and_feedback() -> None:
    decision = decide(answer(), 0.4, KeyState(), RULES)
    assert decision.outcome is RouteOutcome.REGENERATE
    question = decision.question
    assert question is not None and question.attempt == 2
    assert question.best is not None and question.best.score == 0.4
    assert question.feedback and "ref" not in question.feedback.split()  # no reference leak
    assert decide(answer(), 0.4, decision.state, RULES).outcome is RouteOutcome.DUPLICATE


def test_last_attempt_keeps_the_best_even_when_history_was_lost() -> None:
    first = decide(answer(1, "first"), 0.6, KeyState(), RULES)
    second = decide(answer(2, "second"), 0.1, first.state, RULES)  # worker dropped history
    third = decide(answer(3, "third"), 0.3, second.state, RULES)
    assert third.outcome is RouteOutcome.EXHAUSTED
    assert third.result is not None
    assert (third.result.answer, third.result.best_attempt) == ("first", 1)
    assert third.result.exhausted
    assert third.event is not None and third.event.improvement == pytest.approx(0.3 - 0.6)


def test_only_first_attempt_finals_of_deterministic_scorers_skip_the_state() -> None:
    assert RULES.final_without_state(1, 0.75)
    assert not RULES.final_without_state(1, 0.74)  # regenerates: must see duplicates
    assert not RULES.final_without_state(2, 0.9)
    assert Rules(0.75, 1, "lexical").final_without_state(1, 0.1)  # exhausted at once
    assert not Rules(0.75, 3, "judge", deterministic=False).final_without_state(1, 0.9)


def test_settle_splits_a_batch_by_destination() -> None:
    params = parse(
        ["--run", "r", "--kafka.bootstrap-servers", "b", "--scoring.threshold", "0.75"], {}
    )
    settle = Settle(params, LexicalScorer())
    good = answer(text="ref").to_bytes()  # the reference itself: scores 1.0
    weak = answer(text="unrelated words").to_bytes()
    later = answer(2, text="ref").to_bytes()  # a regeneration: needs the keyed state
    rows = settle.settle(
        [b"q1", b"q1", b"q1", b"bad"], [good, weak, later, b"{no"], [0, 0, 0, 1], [5, 6, 7, 8]
    )
    assert [row[0] for row in rows] == ["results", "keyed", "keyed", "dlq"]
    result = json.loads(rows[0][2])
    assert (result["question_id"], result["score"], result["exhausted"]) == ("q1", 1.0, False)
    assert rows[0][3:] == (1.0, "r", 1, None, "validated")  # its metric event
    assert rows[1][1:4] == ("r/q1", weak, 0.0)
    dead = json.loads(rows[3][2])
    assert (dead["reason"], dead["source_partition"], dead["source_offset"]) == ("bad_json", 1, 8)
    assert rows[3][1] == "bad" and rows[3][3:] == (None,) * 5


def test_keyed_state_survives_its_json_form() -> None:
    state = decide(answer(), 0.5, KeyState(), RULES).state
    assert load_state(dump_state(state)) == state


def window_row(max_attempts: int, **columns: object) -> dict[str, object]:
    """A metrics window row as Flink SQL returns it: every column present, by name."""
    row: dict[str, object] = {"n": 0, "score_sum": None, "score_squares": None}
    row |= {
        outcome_column(o): 0
        for o in (RouteOutcome.VALIDATED, RouteOutcome.REGENERATE, RouteOutcome.EXHAUSTED)
    }
    for a in range(1, max_attempts + 1):
        row |= {
            attempt_column(m, a): None if m.endswith("_sum") else 0 for m in PER_ATTEMPT_MEASURES
        }
    return row | columns


def test_run_metrics_mean_sd_and_attempts() -> None:
    # The window of three events: attempt 1 scored 0.2 (regenerated) and 0.8
    # (validated), its regeneration scored 0.9 at attempt 2 (validated, +0.7).
    row = window_row(
        3,
        n=3,
        score_sum=0.2 + 0.8 + 0.9,
        score_squares=0.04 + 0.64 + 0.81,
        n_validated=2,
        n_regenerated=1,
        scored_1=2,
        score_sum_1=1.0,
        final_1=1,
        scored_2=1,
        score_sum_2=0.9,
        final_2=1,
        improved_2=1,
        improvement_sum_2=0.9 - 0.2,
    )
    data = json.loads(RunMetrics.from_window(row, 3).to_json("r", 0, 1000))
    assert data["count"] == 3
    assert data["score_mean"] == pytest.approx((0.2 + 0.8 + 0.9) / 3, abs=1e-6)
    sd = math.sqrt(sum((x - 19 / 30) ** 2 for x in (0.2, 0.8, 0.9)) / 3)  # population
    assert data["score_stddev"] == pytest.approx(sd, abs=1e-6)
    assert data["outcomes"] == {"regenerated": 1, "validated": 2}
    assert data["final_by_attempt"] == {"1": 1, "2": 1}
    assert data["improvement_mean_by_attempt"] == {"2": pytest.approx(0.7)}


def test_metrics_window_sql_names_every_column_the_decoder_reads() -> None:
    aliases = set(re.findall(r" AS (\w+)", metrics_window_sql(3, 5.0)))
    assert aliases | {"run", "window_start", "window_end"} >= window_row(3).keys()


def test_parameters_from_flags_then_environment() -> None:
    env = {
        "QARUN_RUN": "demo",
        "QARUN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "QARUN_SCORING__THRESHOLD": "0.6",
        "QARUN_SCORING__METHOD": "embedding",
    }
    params = parse(["--scoring.threshold", "0.8"], env)
    assert (params.threshold, params.scorer, params.max_attempts) == (0.8, "embedding", 4)
    assert params.results_topic == "qarun.demo.results"
    assert params.group_id == "qarun.demo.scoring"
    shared = {"QARUN_RUN": "demo", "QARUN_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}  # workers' too
    assert parse([], shared).bootstrap == "127.0.0.1:9"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--run", "demo"],
            "--kafka.bootstrap-servers (QARUN_KAFKA__BOOTSTRAP_SERVERS): Field required",
        ),
        (["--run", "Demo!", "--kafka.bootstrap-servers", "b"], "--run (QARUN_RUN)"),
        (
            ["--run", "d", "--kafka.bootstrap-servers", "b", "--scoring.threshold", "2"],
            "--scoring.threshold",
        ),
        (
            ["--run", "d", "--kafka.bootstrap-servers", "b", "--scoring.method", "bleu"],
            "--scoring.method",
        ),
        (
            ["--run", "d", "--kafka.bootstrap-servers", "b", "--scoring.method", "judge"],
            "needs --scoring.judge.base-url",
        ),
    ],
)
def test_bad_parameters_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(ParamError, match="invalid job parameters") as error:
        parse(argv, {})
    assert message in str(error.value)


def test_bad_parameter_stops_before_submission(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        job.main(["--run", "demo", "--kafka.bootstrap-servers", "b", "--flink.parallelism", "0"])
        == 2
    )
    assert "--flink.parallelism (QARUN_FLINK__PARALLELISM)" in capsys.readouterr().err
