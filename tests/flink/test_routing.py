"""Routing rules, keyed-state round trip, run metrics and job parameters, without Flink."""

from __future__ import annotations

import json
import math

import pytest

from qarun_core.messages import Answer, Question
from qarun_flink import job
from qarun_flink.metrics import RunMetrics
from qarun_flink.params import ParamError, parse
from qarun_flink.routing import KeyState, Outcome, Rules, decide
from qarun_flink.scorers.lexical import LexicalScorer

RULES = Rules(threshold=0.75, max_attempts=3, scorer="lexical")


def answer(attempt: int = 1, text: str = "an answer", **fields: object) -> Answer:
    question = Question(run="r", question_id="q1", title="t", best_answer="ref", attempt=attempt)
    return Answer.for_question(question, answer=text, model="m", latency_ms=1.0, **fields)


def test_score_at_threshold_validates_and_closes_the_question() -> None:
    decision = decide(answer(), 0.75, KeyState(), RULES)
    assert decision.outcome is Outcome.VALIDATED
    assert decision.result is not None and not decision.result.exhausted
    assert decision.state.done
    assert decide(answer(2), 0.9, decision.state, RULES).outcome is Outcome.DUPLICATE


def test_below_threshold_regenerates_with_history_and_feedback() -> None:
    decision = decide(answer(), 0.4, KeyState(), RULES)
    assert decision.outcome is Outcome.REGENERATE
    question = decision.question
    assert question is not None and question.attempt == 2
    assert question.best is not None and question.best.score == 0.4
    assert question.feedback and "ref" not in question.feedback.split()  # no reference leak
    assert decide(answer(), 0.4, decision.state, RULES).outcome is Outcome.DUPLICATE


def test_last_attempt_keeps_the_best_even_when_history_was_lost() -> None:
    first = decide(answer(1, "first"), 0.6, KeyState(), RULES)
    second = decide(answer(2, "second"), 0.1, first.state, RULES)  # worker dropped history
    third = decide(answer(3, "third"), 0.3, second.state, RULES)
    assert third.outcome is Outcome.EXHAUSTED
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
    settle = job.Settle(params, LexicalScorer())
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
    assert job._load_state(job._dump_state(state)) == state


def test_run_metrics_mean_sd_and_attempts() -> None:
    events = [
        decide(answer(1), 0.2, KeyState(), RULES).event,
        decide(answer(1), 0.8, KeyState(), RULES).event,
    ]
    later = decide(answer(2), 0.9, decide(answer(1), 0.2, KeyState(), RULES).state, RULES).event
    metrics = RunMetrics()
    for event in (*events, later):
        assert event is not None
        metrics.add(event)
    data = json.loads(metrics.merge(RunMetrics()).to_json("r", 0, 1000))
    assert data["count"] == 3
    assert data["score_mean"] == pytest.approx((0.2 + 0.8 + 0.9) / 3, abs=1e-6)
    sd = math.sqrt(sum((x - 19 / 30) ** 2 for x in (0.2, 0.8, 0.9)) / 3)  # population
    assert data["score_stddev"] == pytest.approx(sd, abs=1e-6)
    assert data["outcomes"] == {"regenerated": 1, "validated": 2}
    assert data["final_by_attempt"] == {"1": 1, "2": 1}
    assert data["improvement_mean_by_attempt"] == {"2": pytest.approx(0.7)}


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
