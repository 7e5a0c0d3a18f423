"""Cosine similarity of MiniLM sentence embeddings.

Backends (QARUN_EMBEDDING__BACKEND): `int8` (default; onnxruntime, int8 dense layers,
see onnx_minilm.py), `onnx` (onnxruntime fp32) and `numpy` (minilm.py, the reference
forward pass). QARUN_EMBEDDING__THREADS sets onnxruntime's threads (default 1: the Flink
job runs one subtask per core). On the sample data set int8 moves scores by 0.004 on
average (0.022 at most) from the float32 numpy pass, for about 3x less CPU per record;
benchmarks/bench_embedding.py measures all three.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from qarun_flink.params import ScorerEnv
from qarun_flink.scorers.base import Pair, clamp01
from qarun_flink.scorers.minilm import Array, Encoder, MiniLM

BACKENDS = ("int8", "onnx", "numpy")


def make_encoder(backend: str | None = None, threads: int | None = None) -> Encoder:
    """The MiniLM encoder of a backend; arguments left out come from the environment."""
    configured = ScorerEnv().embedding
    backend = backend or configured.backend
    threads = threads or configured.threads
    if backend == "numpy":
        return MiniLM()
    if backend in ("int8", "onnx"):
        # Imported on demand: the numpy backend does not need onnxruntime loaded.
        from qarun_flink.scorers.onnx_minilm import OnnxMiniLM  # noqa: PLC0415

        return OnnxMiniLM(int8=backend == "int8", threads=threads)
    raise ValueError(f"unknown embedding backend {backend!r}: {' | '.join(BACKENDS)}")


class EmbeddingScorer:
    """Scores by cosine(answer, reference), clipped to [0, 1].

    Unrelated texts land near 0 with this model and negative cosines carry no extra
    meaning for grading, so clipping is the normalisation. Reference embeddings are
    kept in an LRU cache: every regeneration of a question compares against the same
    reference, so only the new answer is encoded.
    """

    name = "embedding"

    def __init__(
        self, model: Encoder | None = None, cache_size: int = 8192, batch_size: int = 16
    ) -> None:
        self.model = model or make_encoder()
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._references: OrderedDict[str, Array] = OrderedDict()

    def score(self, pair: Pair) -> float:
        return self.score_many([pair])[0]

    def score_many(self, pairs: Sequence[Pair]) -> list[float]:
        if not pairs:
            return []
        missing = [p.reference for p in pairs if p.reference not in self._references]
        # Answers and uncached references go through the model as one list, so the
        # length bucketing sees all of them and no batch runs half-empty.
        texts = list(dict.fromkeys([p.answer for p in pairs] + missing))
        encoded = dict(zip(texts, self.model.encode(texts, self.batch_size), strict=True))
        for text in dict.fromkeys(missing):
            self._references[text] = encoded[text]
        references = self._reference_rows([p.reference for p in pairs])
        answers = np.stack([encoded[p.answer] for p in pairs])
        cosines = np.einsum("ij,ij->i", answers, references)
        return [clamp01(float(c)) for c in cosines]

    def _reference_rows(self, texts: list[str]) -> Array:
        rows = []
        for text in texts:
            self._references.move_to_end(text)
            rows.append(self._references[text])
        # Evicted only after this batch's rows are taken: a batch larger than the cache
        # still scores against every one of its references.
        while len(self._references) > self.cache_size:
            self._references.popitem(last=False)
        return np.stack(rows)
