"""Keyed state of the route: one question's KeyState as JSON text.

JSON rather than a pickled dataclass: readable in a savepoint and stable across
versions of the code.
"""

from __future__ import annotations

import json

from qarun_core.messages import ScoredAttempt
from qarun_flink.routing import KeyState


def dump_state(state: KeyState) -> str:
    best = state.best.model_dump(mode="json") if state.best else None
    return json.dumps({"last_attempt": state.last_attempt, "best": best, "done": state.done})


def load_state(text: str) -> KeyState:
    data = json.loads(text)
    best = ScoredAttempt.model_validate(data["best"]) if data["best"] else None
    return KeyState(last_attempt=data["last_attempt"], best=best, done=data["done"])
