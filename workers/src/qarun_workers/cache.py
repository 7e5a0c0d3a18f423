"""The Redis cache of final answers, read by the API before it asks the pipeline.

Two keys per result, both with the run's TTL: by question id (for GET /status) and
by a hash of the question text (for POST /query, which receives text, not an id).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from qarun_core import keys
from qarun_core.keys import answer_key
from qarun_core.messages import Result

__all__ = ["answer_key", "cache_entries", "text_hash", "text_key"]


def text_hash(title: str, content: str) -> str:
    normal = " ".join(f"{title}\n{content}".lower().split())
    return hashlib.sha256(normal.encode()).hexdigest()[:32]


def text_key(run: str, title: str, content: str) -> str:
    return keys.text_key(run, text_hash(title, content))


def cached_answer(result: Result) -> dict[str, Any]:
    return {
        "run": result.run,
        "question_id": result.question_id,
        "title": result.title,
        "answer": result.answer,
        "score": result.score,
        "exhausted": result.exhausted,
        "attempts": len(result.attempts),
    }


def cache_entries(results: Sequence[Result]) -> dict[str, bytes]:
    entries: dict[str, bytes] = {}
    for result in results:
        value = json.dumps(cached_answer(result)).encode()
        entries[answer_key(result.run, result.question_id)] = value
        entries[text_key(result.run, result.title, result.content)] = value
    return entries
