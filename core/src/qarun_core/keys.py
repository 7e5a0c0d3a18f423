"""Names shared by the deployables besides topics: Redis keys, tables, consumer groups.

Every Redis key of a run is `qarun:<run>:<what>`; the generator writes its own record
(`GeneratorRecord`) and the API and the local runner read it, so its fields are spelled
here once. The PostgreSQL tables are created by the storage writer's migrations
(qarun_workers/migrations) and read by the API and the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from qarun_core.topics import PREFIX


class Table(StrEnum):
    RESULTS = "results"  # one row per question: its best answer, or why it failed
    ATTEMPTS = "attempts"  # every scored answer of every question
    DEAD_LETTERS = "dead_letters"  # every dead letter as it was published


class Role(StrEnum):
    """Consumer roles; each has its own consumer group per run."""

    LLM_WORKER = "llm-worker"
    RETRY = "retry"
    STORAGE_WRITER = "storage-writer"


DEFAULT_GROUP_PREFIX = PREFIX


def consumer_group(run: str, role: str, prefix: str = DEFAULT_GROUP_PREFIX) -> str:
    """The consumer group of one role in one run: `qarun.<run>.llm-worker`."""
    return f"{prefix}.{run}.{role}"


def redis_key(run: str, *parts: str) -> str:
    return ":".join((PREFIX, run, *parts))


def generator_key(run: str) -> str:
    """The generator's record (a hash, fields of GeneratorRecord)."""
    return redis_key(run, "generator")


def budget_key(run: str) -> str:
    """The run's token/cost budget (a hash; `exhausted` says why it ran out)."""
    return redis_key(run, "budget")


def limit_key(run: str, name: str) -> str:
    """A fleet-wide rate bucket, name `rpm` or `tpm`; `hold` is the pause a provider's
    Retry-After asked of the whole fleet."""
    return redis_key(run, "limit", name)


def answer_key(run: str, question_id: str) -> str:
    """A cached final answer by question id."""
    return redis_key(run, "answer", question_id)


def answered_key(run: str, question_id: str, attempt: int) -> str:
    """Set once an answer to this attempt of a question is acknowledged on the answers
    topic: an LLM worker that takes the question again (after a kill) skips its call."""
    return redis_key(run, "answered", question_id, str(attempt))


def text_key(run: str, text_hash: str) -> str:
    """A cached final answer by a hash of the question's text."""
    return redis_key(run, "text", text_hash)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class GeneratorRecord:
    """What the generator checkpoints after each acknowledged batch.

    `next` is the sequence number to resume at: every question before it was sent or
    skipped (already answered by an earlier pass), over all restarts of the generator.
    `done` is set once it has sent everything it will send.
    """

    next: int = 0
    sent: int = 0
    skipped: int = 0
    done: bool = False

    def to_redis(self) -> dict[str, int]:
        return {
            "next": self.next,
            "sent": self.sent,
            "skipped": self.skipped,
            "done": int(self.done),
        }

    @classmethod
    def from_redis(cls, fields: Mapping[Any, Any]) -> GeneratorRecord:
        """From HGETALL's reply (bytes or str); an absent key (empty reply) is a fresh run."""
        values = {_text(k): _text(v) for k, v in fields.items()}
        return cls(
            next=int(values.get("next", 0)),
            sent=int(values.get("sent", 0)),
            skipped=int(values.get("skipped", 0)),
            done=values.get("done") == "1",
        )
