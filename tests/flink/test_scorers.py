"""The scorers as a plain library: known values, a reference check, and AUC on labels."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from harness import DATA, JudgeEndpoint, labelled

from qarun_flink.scorers import AsyncScorer, Pair, Scorer, make_scorer
from qarun_flink.scorers.embedding import EmbeddingScorer
from qarun_flink.scorers.judge import JudgeScorer, Rubric
from qarun_flink.scorers.lexical import LexicalScorer, lcs_length, rouge_l, token_f1, tokens
from qarun_flink.scorers.minilm import MiniLM


@pytest.fixture(scope="module")
def embedding() -> EmbeddingScorer:
    return EmbeddingScorer()


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def labelled_pairs() -> tuple[list[Pair], list[Pair]]:
    """Each answer against its own reference (positive) and every other one (negative)."""
    items = labelled()
    positives, negatives = [], []
    for i, item in enumerate(items):
        for j, other in enumerate(items):
            pair = Pair(item["question"], item["answer"], other["reference"])
            (positives if i == j else negatives).append(pair)
    return positives, negatives


def test_lexical_known_values() -> None:
    scorer = LexicalScorer()
    assert scorer.score(Pair("q", "The cat sat.", "the cat sat")) == 1.0
    assert scorer.score(Pair("q", "dogs bark", "the cat sat")) == 0.0
    assert scorer.score(Pair("q", "", "the cat sat")) == 0.0
    answer, reference = tokens("the cat sat on the mat"), tokens("the cat is on the mat")
    assert token_f1(answer, reference) == pytest.approx(5 / 6)
    assert rouge_l(answer, reference) == pytest.approx(5 / 6)


def test_lcs_agrees_with_the_textbook_table() -> None:
    def table(a: list[str], b: list[str]) -> int:
        rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i, x in enumerate(a):
            for j, y in enumerate(b):
                rows[i + 1][j + 1] = (
                    rows[i][j] + 1 if x == y else max(rows[i][j + 1], rows[i + 1][j])
                )
        return rows[-1][-1]

    rng = random.Random(7)
    for _ in range(300):
        a = rng.choices("abcde", k=rng.randint(0, 40))
        b = rng.choices("abcdef", k=rng.randint(0, 40))
        assert lcs_length(a, b) == table(a, b)


def test_minilm_matches_sentence_transformers() -> None:
    """Embeddings recorded once with sentence-transformers (torch) for the same weights."""
    reference = json.loads((DATA / "minilm_reference.json").read_text())
    texts = [reference["texts"][i] for i in (0, 1, 2, 3, 4, 5)]
    ours = MiniLM().encode(texts, batch_size=4)
    theirs = np.array(reference["embeddings"], dtype=np.float32)
    assert np.abs(ours - theirs).max() < 1e-3  # tanh GELU: see minilm._gelu
    assert (ours * theirs).sum(axis=1).min() > 0.99999
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_embedding_scores_paraphrase_above_unrelated(embedding: EmbeddingScorer) -> None:
    reference = "Photosynthesis converts light energy into chemical energy in plants."
    close = embedding.score(Pair("q", "Plants turn sunlight into sugar.", reference))
    far = embedding.score(Pair("q", "The match was played in a stadium.", reference))
    assert 0.0 <= far < close <= 1.0
    assert embedding.score(Pair("q", reference, reference)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["lexical", "embedding"])
def test_auc_on_labelled_sample(name: str, embedding: EmbeddingScorer) -> None:
    scorer = embedding if name == "embedding" else make_scorer(name)
    positives, negatives = labelled_pairs()
    value = auc(scorer.score_many(positives), scorer.score_many(negatives))
    assert value >= 0.9, f"{name} AUC {value:.3f}"


def test_judge_auc_validation_and_retries(judge_endpoint: JudgeEndpoint) -> None:
    scorer = make_scorer("judge", llm_base_url=judge_endpoint.url, llm_model="judge", api_key="k")
    assert isinstance(scorer, AsyncScorer)
    positives, negatives = labelled_pairs()
    negatives = negatives[::10]  # the judge is the slow one; 38 negatives are plenty
    scores = scorer.score_many(positives + negatives)
    assert all(0.0 <= s <= 1.0 for s in scores)
    value = auc(scores[: len(positives)], scores[len(positives) :])
    assert value >= 0.9, f"judge AUC {value:.3f}"
    assert judge_endpoint.malformed > 0  # malformed replies were asked for again


def test_judge_gives_up_on_replies_that_never_validate(judge_endpoint: JudgeEndpoint) -> None:
    scorer = JudgeScorer(judge_endpoint.url, "judge", "k", attempts=1)
    judge_endpoint.always_malformed = True
    try:
        with pytest.raises(RuntimeError, match="no valid rubric after 1 attempts"):
            scorer.score(Pair("q", "an answer", "a reference"))
    finally:
        judge_endpoint.always_malformed = False


def test_rubric_weights() -> None:
    top = Rubric(accuracy=10, completeness=10, clarity=10, concision=10, usefulness=10)
    assert top.score() == 1.0
    accurate_only = Rubric(accuracy=10, completeness=0, clarity=0, concision=0, usefulness=0)
    assert accurate_only.score() == pytest.approx(0.4)
    with pytest.raises(ValueError):
        Rubric.model_validate_json(
            '{"accuracy": 11, "completeness": 0, "clarity": 0, "concision": 0, "usefulness": 0}'
        )


def test_every_scorer_satisfies_the_protocol(embedding: EmbeddingScorer) -> None:
    scorers = [LexicalScorer(), embedding, JudgeScorer("http://127.0.0.1:9/v1", "m", "k")]
    assert all(isinstance(s, Scorer) for s in scorers)
    assert [s.name for s in scorers] == ["lexical", "embedding", "judge"]
    with pytest.raises(ValueError, match="unknown scorer"):
        make_scorer("bleu")
