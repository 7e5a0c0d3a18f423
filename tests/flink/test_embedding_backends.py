"""The embedding scorer's onnxruntime backends against the numpy reference pass.

Tolerances, on the sample data set's pairs (see sample_pairs):
- fp32 onnxruntime vs numpy: embeddings within 1e-3 per component, cosine > 0.99999
  (they differ only in GELU: exact erf on onnxruntime, tanh form in numpy).
- int8 vs numpy: scores within 0.01 on average and 0.04 at most (measured: 0.004 and
  0.022); the AUC on the labelled sample stays ≥ 0.9 (test_scorers.py runs the default
  backend, int8).
"""

from __future__ import annotations

import json
import random

import numpy as np
import onnx
import pytest
from harness import DATA

from qarun_flink.scorers.base import Pair
from qarun_flink.scorers.embedding import EmbeddingScorer, make_encoder
from qarun_flink.scorers.minilm import MiniLM, load_weights, pad
from qarun_flink.scorers.onnx_minilm import OnnxMiniLM, build_model, pack
from qarun_workers.dataset import read_rows


@pytest.fixture(scope="module")
def numpy_model() -> MiniLM:
    return MiniLM()


@pytest.fixture(scope="module")
def sample_pairs() -> list[Pair]:
    """Each sample row's best answer against a perturbed copy of it and another row's."""
    references = [row.best_answer for row in read_rows("sample")]
    rng = random.Random(3)
    pairs = []
    for n, reference in enumerate(references):
        words = [w for w in reference.split() if rng.random() > 0.2]
        pairs.append(Pair("q", " ".join(words), reference))
        pairs.append(Pair("q", references[(n * 7 + 3) % len(references)], reference))
    return pairs


def scores(model: object, pairs: list[Pair]) -> np.ndarray:  # type: ignore[type-arg]
    return np.array(EmbeddingScorer(model).score_many(pairs))  # type: ignore[arg-type]


def test_graph_is_valid_onnx() -> None:
    onnx.checker.check_model(build_model(load_weights()))


def test_pack_keeps_each_token_once() -> None:
    token_ids, mask = pad([[101, 7, 8, 102], [101, 9, 102], [101, 102]])
    feeds = pack(token_ids, mask)
    assert feeds["input_ids"].tolist() == [101, 7, 8, 102, 101, 9, 102, 101, 102]
    assert feeds["positions"].tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1]
    flat_layout = feeds["layout"].reshape(-1)
    assert flat_layout[feeds["unpad"]].tolist() == list(range(9))  # layout ∘ unpad = id
    assert np.allclose(feeds["pool"].sum(axis=1), 1.0)


def test_onnx_fp32_matches_numpy_and_sentence_transformers(numpy_model: MiniLM) -> None:
    reference = json.loads((DATA / "minilm_reference.json").read_text())
    texts = reference["texts"][:6]
    ours = OnnxMiniLM(int8=False).encode(texts, batch_size=4)
    theirs = np.array(reference["embeddings"], dtype=np.float32)
    assert np.abs(ours - theirs).max() < 1e-4  # exact GELU, like BERT: closer than numpy
    assert np.abs(ours - numpy_model.encode(texts)).max() < 1e-3


def test_onnx_fp32_scores_equal_numpy(numpy_model: MiniLM, sample_pairs: list[Pair]) -> None:
    diff = np.abs(scores(make_encoder("onnx"), sample_pairs) - scores(numpy_model, sample_pairs))
    assert diff.max() < 2e-3


def test_int8_scores_agree_with_numpy(numpy_model: MiniLM, sample_pairs: list[Pair]) -> None:
    diff = np.abs(scores(make_encoder("int8"), sample_pairs) - scores(numpy_model, sample_pairs))
    assert diff.mean() < 0.01, diff.mean()
    assert diff.max() < 0.04, diff.max()


def test_long_texts_are_truncated_like_sentence_transformers(numpy_model: MiniLM) -> None:
    """256 word pieces, then cut: a text and its tail-extended copy embed the same."""
    text = "word " * 300
    ours = OnnxMiniLM(int8=False).encode([text, text + "different ending " * 50])
    assert float(ours[0] @ ours[1]) > 0.99999
    assert float(ours[0] @ numpy_model.encode([text])[0]) > 0.99999


def test_reference_cache_and_batch_entry_point() -> None:
    calls: list[list[str]] = []
    inner = make_encoder("int8")

    class Counting:
        def encode(self, texts: list[str], batch_size: int = 16) -> np.ndarray:  # type: ignore[type-arg]
            calls.append(list(texts))
            return inner.encode(texts, batch_size)

    scorer = EmbeddingScorer(Counting(), cache_size=2)  # type: ignore[arg-type]
    first = scorer.score_many([Pair("q", "a1", "r1"), Pair("q", "a2", "r1")])
    assert calls[-1] == ["a1", "a2", "r1"]  # one model call, reference once
    again = scorer.score_many([Pair("q", "a1", "r1")])
    assert calls[-1] == ["a1"] and again[0] == pytest.approx(first[0], abs=1e-6)
    scorer.score_many([Pair("q", "a", "r2"), Pair("q", "a", "r3")])
    assert list(scorer._references) == ["r2", "r3"]  # LRU bound: r1 evicted


def test_int8_embedding_does_not_depend_on_batch_mates(sample_pairs: list[Pair]) -> None:
    """Per-token activation scales: a text embeds the same alone or in any batch."""
    model = make_encoder("int8")
    texts = [p.reference for p in sample_pairs[:40:2]]
    together = model.encode(texts, batch_size=16)
    alone = np.stack([model.encode([t])[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown embedding backend"):
        make_encoder("torch")
