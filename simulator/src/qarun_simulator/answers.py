"""How the simulator reads a prompt and writes an answer: a noisy copy of the reference.

A quality q keeps about a fraction q of the reference answer's words, in order, and
pads with filler words, so that lexical scores spread as a real model's do.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from qarun_workers.dataset import DatasetError, read_rows

FILLER = [
    "generally",
    "also",
    "basically",
    "often",
    "indeed",
    "usually",
    "perhaps",
    "notably",
    "simply",
    "clearly",
    "really",
    "quite",
    "mostly",
    "certainly",
    "probably",
]
TITLE_PREFIX = "Question:"  # the first line of the LLM worker's user prompt


def prompt_text(messages: Sequence[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")


def prompt_title(prompt: str) -> str:
    for line in prompt.splitlines():
        if line.startswith(TITLE_PREFIX):
            return line[len(TITLE_PREFIX) :].strip()
    return prompt[:200]


def tokens(text: str) -> int:
    """Roughly what a BPE tokenizer would count: about 4 characters a token."""
    return max(1, (len(text) + 3) // 4)


def noisy_answer(rng: random.Random, reference: str, quality: float) -> str:
    """Keep about `quality` of the reference words, in order, and pad with filler words."""
    words = reference.split()
    kept = [w for w in words if rng.random() < quality]
    filler = [rng.choice(FILLER) for _ in range(round(len(words) * (1 - quality)))]
    for word in filler:
        kept.insert(rng.randrange(len(kept) + 1), word)
    return " ".join(kept) or "I am not sure."


def load_references(source: str, fmt: str) -> dict[str, str]:
    if not source:
        return {}
    try:
        return {row.title: row.best_answer for row in read_rows(source, fmt)}
    except DatasetError as error:
        raise SystemExit(f"qarun-llm-sim: {error}") from None
