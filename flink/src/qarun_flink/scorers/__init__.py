"""Answer scorers behind one protocol, usable with or without Flink.

from qarun_flink.scorers import Pair, make_scorer
make_scorer("lexical").score(Pair(question, answer, reference))  # -> 0..1
"""

from __future__ import annotations

from qarun_flink.params import ScorerEnv
from qarun_flink.scorers.base import AsyncScorer, Pair, Scorer, clamp01
from qarun_flink.scorers.embedding import EmbeddingScorer
from qarun_flink.scorers.judge import JudgeScorer
from qarun_flink.scorers.lexical import LexicalScorer

__all__ = ["AsyncScorer", "Pair", "Scorer", "clamp01", "make_scorer"]


def make_scorer(
    name: str,
    *,
    llm_base_url: str | None = None,
    llm_model: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
) -> Scorer:
    """A scorer by name. The embedding model's weights load here, once per caller."""
    if name == "lexical":
        return LexicalScorer()
    if name == "embedding":
        return EmbeddingScorer()
    if name == "judge":
        if not llm_base_url or not llm_model:
            raise ValueError("the judge scorer needs an LLM base URL and model")
        key = (
            api_key if api_key is not None else ScorerEnv().scoring.judge.api_key.get_secret_value()
        )
        return JudgeScorer(llm_base_url, llm_model, key, timeout=timeout)
    raise ValueError(f"unknown scorer {name!r}: lexical | embedding | judge")
