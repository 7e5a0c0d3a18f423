"""The openai client against the simulator: answers, usage, and how failures classify."""

from __future__ import annotations

import asyncio

import pytest

from qarun_core.messages import ErrorClass, Question
from qarun_workers.llm_client import Completion, Failure, ask, duration, make_client, prompt
from qarun_workers.settings import LLMSettings

from .conftest import SimFactory

TITLE = "What is the capital of France?"
REFERENCE = "The capital of France is Paris."


def question() -> Question:
    return Question(run="demo", question_id="q1", title=TITLE, best_answer=REFERENCE)


async def call(base_url: str, seconds: float = 5.0, key: str = "") -> Completion | Failure:
    settings = LLMSettings(base_url=base_url, timeout_seconds=seconds, max_concurrency=8)
    client = make_client(settings, key)
    try:
        return await ask(client, settings, prompt(question()))
    except Failure as failure:
        return failure
    finally:
        await client.close()


def test_answer_derives_from_reference_with_usage(simulator: SimFactory) -> None:
    sim = simulator("--latency", "0.01")
    outcome = asyncio.run(call(sim.base_url))
    assert isinstance(outcome, Completion)
    assert "Paris" in outcome.text or "capital" in outcome.text
    assert outcome.prompt_tokens > 0
    assert outcome.completion_tokens > 0
    assert sim.stats()["outcomes"] == {"ok": 1}


@pytest.mark.parametrize(
    ("args", "error", "reason"),
    [
        (("--rate-429", "1", "--retry-after", "3"), ErrorClass.OVERLOAD, "429 rate_limit_exceeded"),
        (("--rate-503", "1"), ErrorClass.OVERLOAD, "503"),
        (("--rate-400", "1"), ErrorClass.PERMANENT, "400"),
        (
            ("--quota-after", "0", "--rpm-limit", "0", "--rate-malformed", "1"),
            ErrorClass.OVERLOAD,
            "malformed",
        ),
        (("--rate-timeout", "1", "--hang-seconds", "5"), ErrorClass.OVERLOAD, "timeout"),
    ],
)
def test_failures_classify(
    simulator: SimFactory, args: tuple[str, ...], error: ErrorClass, reason: str
) -> None:
    sim = simulator("--latency", "0", *args)
    outcome = asyncio.run(call(sim.base_url, seconds=1.0))
    assert isinstance(outcome, Failure)
    assert outcome.error == error
    assert reason in outcome.reason
    if "--retry-after" in args:
        assert outcome.retry_after == 3.0


def test_quota_exhaustion_is_its_own_class(simulator: SimFactory) -> None:
    sim = simulator("--latency", "0", "--quota-after", "1")
    first = asyncio.run(call(sim.base_url))
    second = asyncio.run(call(sim.base_url))
    assert isinstance(first, Completion)
    assert isinstance(second, Failure)
    assert second.error == ErrorClass.QUOTA


def test_wrong_key_is_permanent_and_right_key_works(simulator: SimFactory) -> None:
    sim = simulator("--latency", "0", env={"QARUN_SIMULATOR__API_KEY": "sk-right-key-1"})
    wrong = asyncio.run(call(sim.base_url, key="sk-wrong-key-2"))
    right = asyncio.run(call(sim.base_url, key="sk-right-key-1"))
    assert isinstance(wrong, Failure)
    assert wrong.error == ErrorClass.PERMANENT
    assert isinstance(right, Completion)


def test_rate_limit_headers_are_read_and_a_paced_429_is_no_overload(
    simulator: SimFactory,
) -> None:
    # 60 a minute with a bucket of one second's worth: the second call comes too soon.
    sim = simulator("--latency", "0", "--rpm-limit", "60", "--tpm-limit", "600000",
                    "--burst-seconds", "1")  # fmt: skip
    first = asyncio.run(call(sim.base_url))
    second = asyncio.run(call(sim.base_url))
    assert isinstance(first, Completion)
    assert first.pacing.limit_requests == 60
    assert first.pacing.limit_tokens == 600_000
    assert first.pacing.remaining_requests == 0
    assert 0 < first.pacing.reset_requests <= 1
    assert isinstance(second, Failure)
    assert second.error == ErrorClass.OVERLOAD
    assert second.reason == "429 rate_limit_exceeded"
    assert second.paced
    assert 0 < second.retry_after <= 1  # from retry-after-ms: when one request fits again
    assert sim.stats()["outcomes"] == {"ok": 1, "limit_429": 1}


def test_a_429_without_headers_is_not_paced(simulator: SimFactory) -> None:
    sim = simulator("--latency", "0", "--rate-429", "1")
    outcome = asyncio.run(call(sim.base_url))
    assert isinstance(outcome, Failure)
    assert outcome.error == ErrorClass.OVERLOAD
    assert not outcome.paced
    assert outcome.retry_after == 0


def test_capacity_refusals_carry_no_pacing(simulator: SimFactory) -> None:
    sim = simulator("--latency", "1", "--capacity", "2")

    async def three() -> list[Completion | Failure]:
        return list(await asyncio.gather(*(call(sim.base_url) for _ in range(3))))

    outcomes = asyncio.run(three())
    refused = [o for o in outcomes if isinstance(o, Failure)]
    assert len(refused) == 1
    assert refused[0].reason.startswith("503")
    assert not refused[0].paced
    assert refused[0].latency_s < 0.5  # refused at the door, not after the work
    assert sim.stats()["outcomes"] == {"ok": 2, "capacity_503": 1}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("20ms", 0.02), ("1.5s", 1.5), ("6m0s", 360.0), ("1h2m3s", 3723.0), ("2", 2.0), ("", 0.0)],
)
def test_reset_durations(text: str, seconds: float) -> None:
    assert duration(text) == pytest.approx(seconds)
