"""Cosine similarity of MiniLM sentence embeddings (numpy forward pass, see minilm.py)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from qarun_flink.scorers.base import Pair, clamp01
from qarun_flink.scorers.minilm import Array, MiniLM


class EmbeddingScorer:
    """Scores by cosine(answer, reference), clipped to [0, 1].

    Unrelated texts land near 0 with this model and negative cosines carry no extra
    meaning for grading, so clipping is the normalisation. Reference embeddings are
    kept in an LRU cache: every regeneration of a question compares against the same
    reference, so only the new answer is encoded.
    """

    name = "embedding"

    def __init__(self, model: MiniLM | None = None, cache_size: int = 8192) -> None:
        self.model = model or MiniLM()
        self.cache_size = cache_size
        self._references: OrderedDict[str, Array] = OrderedDict()

    def score(self, pair: Pair) -> float:
        return self.score_many([pair])[0]

    def score_many(self, pairs: Sequence[Pair]) -> list[float]:
        if not pairs:
            return []
        references = self._reference_vectors([p.reference for p in pairs])
        unique = list(dict.fromkeys(p.answer for p in pairs))
        encoded = dict(zip(unique, self.model.encode(unique), strict=True))
        answers = np.stack([encoded[p.answer] for p in pairs])
        cosines = np.einsum("ij,ij->i", answers, references)
        return [clamp01(float(c)) for c in cosines]

    def _reference_vectors(self, texts: list[str]) -> Array:
        missing = list(dict.fromkeys(t for t in texts if t not in self._references))
        if missing:
            for text, vector in zip(missing, self.model.encode(missing), strict=True):
                self._references[text] = vector
        rows = []
        for text in texts:
            self._references.move_to_end(text)
            rows.append(self._references[text])
        while len(self._references) > self.cache_size:
            self._references.popitem(last=False)
        return np.stack(rows)
