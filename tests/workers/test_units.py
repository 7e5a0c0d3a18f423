"""Pure pieces of the workers: settings, log redaction, AIMD, offsets, back-off, traffic."""

from __future__ import annotations

import importlib
import logging
import random

import pytest
from confluent_kafka import TopicPartition

from qarun_core.messages import DeadLetterReason, ErrorClass, Question
from qarun_core.spec import BurstSpec, DatasetSpec, OverloadRetry, QuotaRetry
from qarun_core.topics import RetryTier
from qarun_workers.generator import arrivals, in_burst, question_id, sequence
from qarun_workers.kafka_io import OffsetTracker
from qarun_workers.logs import RedactSecrets
from qarun_workers.retry import give_up, retry_delay
from qarun_workers.settings import RetrySettings, Settings, TrafficSettings


class _Msg:
    """What OffsetTracker reads of a consumed message."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


def test_settings_from_env_keep_the_key_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QARUN_RUN", "yahoo-demo")
    monkeypatch.setenv("QARUN_LLM__MAX_CONCURRENCY", "900")
    monkeypatch.setenv("QARUN_RETRY__TIERS", "5s,30s,5m")
    monkeypatch.setenv("QARUN_LLM__API_KEY", "sk-from-env-123456")
    settings = Settings()
    assert settings.llm.max_concurrency == 900
    assert settings.retry.tiers == (RetryTier(5), RetryTier(30), RetryTier(300))
    assert settings.topics.retries[-1] == "qarun.yahoo-demo.retry-5m"
    assert settings.llm.api_key.get_secret_value() == "sk-from-env-123456"
    assert "sk-from-env" not in repr(settings)
    assert settings.group("llm-worker") == "qarun.yahoo-demo.llm-worker"


@pytest.mark.parametrize(
    "line",
    [
        "headers={'Authorization': 'Bearer sk-abcdef1234567890'}",
        "sending authorization: Bearer abc.def.ghi",
        "key is sk-proj-abcdefgh12345678 oops",
        'payload {"api_key": "hunter2-long-secret"}',
        "dsn postgresql://qarun:pa55word@db:5432/qarun",
        "the configured secret my-own-secret-value leaked",
    ],
)
def test_redaction_filter_masks_secrets(line: str, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    redact = RedactSecrets(["my-own-secret-value"])
    logger.addFilter(redact)
    try:
        with caplog.at_level(logging.DEBUG, logger="test.redaction"):
            logger.debug("%s", line)
    finally:
        logger.removeFilter(redact)
    text = caplog.records[-1].getMessage()
    assert "***" in text
    for secret in ("sk-abcdef", "abc.def.ghi", "sk-proj-abc", "hunter2", "pa55word", "my-own"):
        assert secret not in text


def test_offsets_are_stored_only_past_the_finished_prefix() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(_Msg(offset))  # type: ignore[arg-type]
    assert tracker.finished("t", 0, 12) is None
    assert tracker.finished("t", 0, 10) == TopicPartition("t", 0, 11)
    assert tracker.finished("t", 0, 11) == TopicPartition("t", 0, 13)
    assert tracker.in_flight == 0
    tracker.revoke([TopicPartition("t", 0)])
    assert tracker.finished("t", 0, 14) is None


def test_offsets_finished_behind_or_dropped_are_not_waited_for() -> None:
    """A revoke waits while `unsettled` is above zero: an offset finished behind an
    unfinished one, or dropped (its call cancelled), has no output still to come."""
    tracker = OffsetTracker()
    for offset in (10, 11, 12, 13):
        tracker.started(_Msg(offset))  # type: ignore[arg-type]
    partition = [TopicPartition("t", 0)]
    assert tracker.finished("t", 0, 12) is None
    assert tracker.unsettled(partition) == 3
    tracker.dropped("t", 0, 10)  # cancelled before it was sent
    assert tracker.unsettled(partition) == 2
    assert tracker.finished("t", 0, 11) is None  # 10 holds the prefix: nothing stored
    assert tracker.finished("t", 0, 13) is None
    assert tracker.unsettled(partition) == 0


def test_backoff_is_exponential_with_jitter_and_quota_waits_long() -> None:
    policy = RetrySettings(
        overload=OverloadRetry(base_delay_seconds=2, max_delay_seconds=60),
        quota=QuotaRetry(delay_seconds=90),
    )
    rng = random.Random(1)
    delays = [retry_delay(ErrorClass.OVERLOAD, n, policy, 0, rng) for n in range(8)]
    assert 1 <= delays[0] <= 2
    assert 8 <= delays[3] <= 16
    assert all(30 <= d <= 60 for d in delays[5:])
    assert retry_delay(ErrorClass.OVERLOAD, 0, policy, 7.0, rng) == 7.0  # Retry-After wins
    assert retry_delay(ErrorClass.QUOTA, 0, policy, 0, rng) == 90


def test_quota_refusals_wait_for_the_provider_not_against_max_attempts() -> None:
    policy = RetrySettings(
        max_attempts=3, quota=QuotaRetry(delay_seconds=60, max_wait_seconds=3600)
    )
    question = Question(run="r", question_id="q", title="t")
    for _ in range(60):  # an hour of refusals: each one waits, none is a failed call
        assert give_up(question, ErrorClass.QUOTA, "insufficient_quota", policy) is None
        question = question.retried(quota=True)
    assert question.failed_calls == 0
    assert give_up(question, ErrorClass.QUOTA, "insufficient_quota", policy) == (
        DeadLetterReason.RETRIES_EXHAUSTED,
        "quota: insufficient_quota after 61 refusals",
    )
    # Overload still has its max_attempts calls, however long the quota wait was.
    assert give_up(question, ErrorClass.OVERLOAD, "503", policy) is None
    question = question.retried().retried()
    assert give_up(question, ErrorClass.OVERLOAD, "503", policy) == (
        DeadLetterReason.RETRIES_EXHAUSTED,
        "overload: 503 after 3 calls",
    )
    assert give_up(question, ErrorClass.PERMANENT, "400", policy) == (
        DeadLetterReason.PERMANENT_ERROR,
        "permanent: 400 after 3 calls",
    )


@pytest.mark.parametrize("distribution", ["poisson", "constant", "bursty"])
def test_arrival_schedules_keep_their_mean_rate(distribution: str) -> None:
    traffic = TrafficSettings(
        distribution=distribution,
        rate_per_second=200,  # type: ignore[arg-type]
        burst=BurstSpec(factor=5, every_seconds=10, length_seconds=2),
    )
    times = arrivals(traffic, random.Random(7))
    sent = [next(times) for _ in range(60_000)]
    rate = len(sent) / sent[-1]
    expected = 200.0
    if distribution == "bursty":  # 2 s of every 10 at 5x: mean = 200 * (8 + 2*5) / 10
        expected = 360.0
        burst = sum(1 for t in sent if in_burst(t, traffic))
        assert burst > len(sent) / 2
    assert rate == pytest.approx(expected, rel=0.02)


def test_question_ids_are_stable_and_rows_repeat_up_to_total() -> None:
    assert question_id("demo", 5) == question_id("demo", 5)
    assert question_id("demo", 5) != question_id("other", 5)
    rows = list(sequence(DatasetSpec(), TrafficSettings(total=700)))
    assert len(rows) == 700
    assert rows[311][1] == rows[0][1]  # the 311-row sample starts over
    assert [seq for seq, _ in rows] == list(range(700))
    assert len(list(sequence(DatasetSpec(limit=20), TrafficSettings()))) == 20


@pytest.mark.parametrize(
    "module",
    [
        "qarun_workers.generator",
        "qarun_workers.llm_worker",
        "qarun_workers.retry",
        "qarun_workers.storage_writer",
        "qarun_workers.api",
        "qarun_simulator.server",  # its own package; in the workers image all the same
    ],
)
def test_every_role_has_a_help(module: str, capsys: pytest.CaptureFixture[str]) -> None:
    role = importlib.import_module(module)
    with pytest.raises(SystemExit) as done:
        role.main(["--help"])
    assert done.value.code == 0
    assert "usage: qarun-" in capsys.readouterr().out
