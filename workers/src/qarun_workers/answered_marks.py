"""Marks in Redis of the questions whose answer the broker has acknowledged.

A killed LLM worker's partitions go to a worker that starts at the last committed
offset, and the answers acknowledged since that commit would be asked again. The
worker sets a mark (`answered_key`, an hour's TTL) for each acknowledged answer and,
before it calls the LLM for a fetched batch, reads the batch's marks in one MGET and
skips the questions already answered. What is left to repeat after a SIGKILL is the
calls in flight and the few answers acknowledged in the last moment before the marks
were written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from qarun_core.keys import answered_key
from qarun_core.messages import Question

log = logging.getLogger(__name__)

MARK_TTL_SECONDS = 3600  # longer than any question waits between two owners


class AnsweredMarks:
    def __init__(self, redis: Redis, run: str) -> None:
        self.redis = redis
        self.run = run
        self._pending: list[str] = []
        self._wake = asyncio.Event()

    def _key(self, question: Question) -> str:
        return answered_key(self.run, question.question_id, question.attempt)

    async def answered(self, questions: Sequence[Question]) -> list[bool]:
        """For each question, whether its attempt was answered already. Redis away: none
        was (the calls are made; the storage writer keeps one result per question)."""
        if not questions:
            return []
        try:
            found = await self.redis.mget([self._key(q) for q in questions])
        except RedisError as error:
            log.warning("answered marks not read: %s", error)
            return [False] * len(questions)
        return [value is not None for value in found]

    def mark(self, question: Question) -> None:
        """From the answer's delivery callback: written by `write_marks` soon after."""
        self._pending.append(self._key(question))
        self._wake.set()

    async def write_marks(self) -> None:
        """Runs beside the worker's loop: each wake-up writes what is pending, pipelined."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        keys, self._pending = self._pending, []
        if not keys:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.set(key, 1, ex=MARK_TTL_SECONDS)
                await pipe.execute()
        except RedisError as error:
            log.warning("%d answered marks not written: %s", len(keys), error)
