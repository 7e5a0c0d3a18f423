"""all-MiniLM-L6-v2 on onnxruntime, the graph built here from the shipped weights.

Why: the numpy pass (minilm.py) runs its matmuls at 60-75% of a core's float32 peak
and spends a fifth of its time in separate numpy passes (layer norms, GELU, softmax).
This graph runs on onnxruntime's kernels, and in int8 mode runs the four dense layers
of each block on the CPU's int8 dot-product instructions (AVX512-VNNI here): the dense
layers are 98% of the multiply-adds for texts of a few dozen tokens, and int8 does
them about twice as fast as float32, near the core's int8 peak. What is left (attention,
layer norms, GELU, the per-token quantization) was half of the int8 pass's kernel time,
so those ops are chosen by measurement (see _attention and _add_norm). No torch, no
export, no download, nothing cached on disk: the graph is written with onnx's helper
API from the same `Weights` the numpy pass uses, in about a second.

The dense layers run on packed tokens (all texts' tokens in one matrix, no padding):
only attention needs the texts apart, and it gets them through a gather into a padded
(texts, longest) layout. So padding costs attention work only, a few percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort  # type: ignore[import-untyped]
from onnx import TensorProto, helper, numpy_helper

from qarun_flink.scorers.minilm import (
    MAX_TOKENS,
    Array,
    BucketedEncoder,
    Ids,
    Layer,
    Weights,
    load_weights,
    model_dir,
)

MS = "com.microsoft"  # onnxruntime's contrib operators (its int8 matmul, GELU)


class _Graph:
    """Collects nodes and weights (initializers) while the graph is written."""

    def __init__(self, int8: bool) -> None:
        self.int8 = int8
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.u128 = numpy_helper.from_array(np.array([128], dtype=np.uint8))

    def weight(self, name: str, value: np.ndarray[Any, Any]) -> str:
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output

    def linear(self, x: str, w: Array, out: str) -> str:
        """x @ w (bias left to the fused op that follows), fp32 or int8."""
        if not self.int8:
            return self.node("MatMul", [x, self.weight(out + ".w", w)], out)
        return self._int8_linear(x, w, out)

    def _int8_linear(self, x: str, w: Array, out: str) -> str:
        """x @ w on the int8 dot-product units, every scale chosen so that a text's
        result never depends on the other texts in its batch: weights symmetric per
        output column (fixed here), activations symmetric per token (row).
        onnxruntime's quantize_dynamic scales activations per tensor, i.e. per batch:
        a text's score then moved by up to 0.015 with its batch mates."""
        w_scale = (np.maximum(np.abs(w).max(axis=0), 1e-12) / 127).astype(np.float32)
        w_q = np.round(w / w_scale).astype(np.int8)
        abs_x = self.node("Abs", [x], out + ".abs")
        amax = self.node("ReduceMax", [abs_x, "axis1"], out + ".amax", keepdims=0)
        scale = self.node(
            "Div", [self.node("Max", [amax, "tiny"], out + ".clamp"), "q127"], out + ".s"
        )
        # Zero point 128 on uint8 holds the symmetric range [-127, 127] that the u8·s8
        # kernel wants; QuantizeLinear takes it per row, like the scale.
        rows = self.node("Shape", [amax], out + ".rows")
        zero = self.node("ConstantOfShape", [rows], out + ".zp", value=self.u128)
        q = self.node("QuantizeLinear", [x, scale, zero], out + ".q", axis=0)
        product = self.node(
            "MatMulIntegerToFloat",
            [q, self.weight(out + ".w", w_q), "f1", self.weight(out + ".ws", w_scale), "u128"],
            out + ".unscaled",
            domain=MS,
        )
        return self.node(
            "Mul", [product, self.node("Unsqueeze", [scale, "last"], out + ".col")], out
        )

    def constants(self) -> None:
        """The scalars that the int8 linears share."""
        self.weight("axis1", np.array([1]))
        self.weight("last", np.array([-1]))
        self.weight("f1", np.array(1, dtype=np.float32))
        self.weight("tiny", np.array(1e-8, dtype=np.float32))
        self.weight("q127", np.array(127, dtype=np.float32))
        self.weight("u128", np.array(128, dtype=np.uint8))


def _embeddings(g: _Graph, w: Weights) -> str:
    word, position = g.weight("word", w.word), g.weight("position", w.position)
    tokens = g.node("Gather", [word, "input_ids"], "tokens")
    summed = g.node("Add", [tokens, g.node("Gather", [position, "positions"], "pos")], "summed")
    gamma, beta = g.weight("embed_gamma", w.embed_norm[0]), g.weight("embed_beta", w.embed_norm[1])
    return g.node("LayerNormalization", [summed, gamma, beta], "embedded", axis=-1, epsilon=w.eps)


def _attention(g: _Graph, p: str, x: str, layer: Layer, w: Weights) -> str:
    """Self-attention of packed tokens (tokens, hidden) → (tokens, hidden).

    Only attention needs the texts apart: q, k and v are computed on the packed tokens,
    gathered into a padded (texts, longest, ·) layout, and the real rows gathered back.
    Plain ONNX ops, not onnxruntime's MultiHeadAttention: on these short texts (tens of
    tokens) its CPU kernel took 1.3 s of kernel time per 1,000 pairs of the labelled
    set, the ops below about 1.0 s (onnxruntime's profiler, int8, one thread).
    The 1/sqrt(head size) of the scores is folded into q's weights and bias.
    """
    head = w.hidden // w.heads
    scale = np.ones(3 * w.hidden, dtype=np.float32)
    scale[: w.hidden] = 1 / np.sqrt(head)
    qkv = g.linear(x, layer.qkv * scale, p + "qkv_out")
    biased = g.node("Add", [qkv, g.weight(p + "qkv_bias", layer.qkv_bias * scale)], p + "qkv")
    padded = g.node("Gather", [biased, "layout"], p + "qkv_padded")
    parts = [p + "q_flat", p + "k_flat", p + "v_flat"]
    g.nodes.append(
        helper.make_node("Split", [padded], parts, name=p + "split", axis=-1, num_outputs=3)
    )
    q, k, v = (g.node("Reshape", [part, "heads_shape"], part + ".heads") for part in parts)
    # (texts, longest, heads, head) → q, v: (texts, heads, longest, head); k transposed.
    q = g.node("Transpose", [q], p + "q", perm=[0, 2, 1, 3])
    k = g.node("Transpose", [k], p + "k_t", perm=[0, 2, 3, 1])
    v = g.node("Transpose", [v], p + "v", perm=[0, 2, 1, 3])
    scores = g.node("Add", [g.node("MatMul", [q, k], p + "scores"), "key_bias"], p + "masked")
    probs = g.node("Softmax", [scores], p + "probs", axis=-1)
    context = g.node("MatMul", [probs, v], p + "context_heads")
    context = g.node("Transpose", [context], p + "context", perm=[0, 2, 1, 3])
    flat = g.node("Reshape", [context, "flat_shape"], p + "context_flat")
    return g.node("Gather", [flat, "unpad"], p + "context_packed")


def _add_norm(g: _Graph, out: str, inputs: Sequence[str], norm: Sequence[str], eps: float) -> str:
    """LayerNorm(sum of inputs). Sum + LayerNormalization rather than onnxruntime's
    SkipLayerNormalization: that kernel took 1.6 s per 1,000 pairs (as in _attention),
    the two ops 0.45 s."""
    summed = g.node("Sum", list(inputs), out + ".sum")
    return g.node("LayerNormalization", [summed, *norm], out, axis=-1, epsilon=eps)


def _layer(g: _Graph, i: int, x: str, layer: Layer, w: Weights) -> str:
    def p(name: str) -> str:
        return f"layer{i}.{name}"

    def weight(name: str, value: Array) -> str:
        return g.weight(p(name), value)

    context = _attention(g, p(""), x, layer, w)
    attended = g.linear(context, layer.out, p("attended"))
    norm1 = [weight("g1", layer.norm1[0]), weight("b1", layer.norm1[1])]
    h1 = _add_norm(g, p("h1"), [attended, weight("out_bias", layer.out_bias), x], norm1, w.eps)
    up = g.linear(h1, layer.up, p("up_out"))
    # fp32 keeps the exact (erf) GELU that BERT was trained with, to match
    # sentence-transformers to 1e-4. int8 is the approximate backend anyway: the tanh
    # GELU (FastGelu) took 0.56 s per 1,000 pairs against BiasGelu's 0.77 s, and moved
    # scores no further from float32 (mean 0.0042 against 0.0044).
    gelu_op = "FastGelu" if g.int8 else "BiasGelu"
    gelu = g.node(gelu_op, [up, weight("up_bias", layer.up_bias)], p("gelu"), domain=MS)
    down = g.linear(gelu, layer.down, p("down_out"))
    norm2 = [weight("g2", layer.norm2[0]), weight("b2", layer.norm2[1])]
    return _add_norm(g, p("h2"), [down, weight("down_bias", layer.down_bias), h1], norm2, w.eps)


def build_model(w: Weights, int8: bool = False) -> onnx.ModelProto:
    """The fp32 graph over packed tokens: no padding in the dense layers.

    Inputs (see `pack`): input_ids, positions (tokens,) int64; layout (texts, longest)
    int64, each text's token indices; key_bias (texts, 1, 1, longest) float32, -1e9 on
    padding keys and 0 elsewhere; unpad (tokens,) int64, each token's index in the
    flattened layout; pool (texts, tokens) float32, 1/length where a token belongs to a
    text. Output: embedding (texts, hidden).
    """
    g = _Graph(int8)
    if int8:
        g.constants()
    g.weight("flat_shape", np.array([-1, w.hidden]))
    g.weight("heads_shape", np.array([0, 0, w.heads, w.hidden // w.heads]))
    x = _embeddings(g, w)
    for i, layer in enumerate(w.layers):
        x = _layer(g, i, x, layer, w)
    pooled = g.node("MatMul", ["pool", x], "pooled")  # mean over each text's tokens
    g.node("LpNormalization", [pooled], "embedding", axis=-1, p=2)

    def value(name: str, kind: int, shape: list[str | int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, kind, shape)

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            value("input_ids", TensorProto.INT64, ["tokens"]),
            value("positions", TensorProto.INT64, ["tokens"]),
            value("layout", TensorProto.INT64, ["texts", "longest"]),
            value("key_bias", TensorProto.FLOAT, ["texts", 1, 1, "longest"]),
            value("unpad", TensorProto.INT64, ["tokens"]),
            value("pool", TensorProto.FLOAT, ["texts", "tokens"]),
        ],
        [value("embedding", TensorProto.FLOAT, ["texts", w.hidden])],
        g.weights,
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid(MS, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn a shared core while waiting for the next batch.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # the optimizer's notes on folded constants are noise
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxMiniLM(BucketedEncoder):
    """MiniLM embeddings on onnxruntime, float32 or int8 (see _Graph._int8_linear).

    `threads`: onnxruntime's intra-op threads. 1 when Flink runs one subtask per core
    (the job's default); 2 for a lone process on this machine.
    """

    def __init__(
        self,
        path: Path | None = None,
        max_tokens: int = MAX_TOKENS,
        *,
        int8: bool = True,
        threads: int = 1,
        weights: Weights | None = None,
    ) -> None:
        path = path or model_dir()
        super().__init__(path, max_tokens)
        w = weights or load_weights(path)
        self.int8 = int8
        self._dimensions = w.hidden
        self.session = session(build_model(w, int8).SerializeToString(), threads)

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def _forward(self, token_ids: Ids, mask: Ids) -> Array:
        return cast(Array, self.session.run(["embedding"], pack(token_ids, mask))[0])


def pack(token_ids: Ids, mask: Ids) -> dict[str, npt.NDArray[Any]]:
    """The packed graph's inputs from a padded batch (see build_model)."""
    real = mask.astype(bool)
    lengths = real.sum(axis=1)
    flat_index = np.flatnonzero(real)  # each real token's slot in the flattened layout
    layout = np.zeros(mask.shape, dtype=np.int64)
    layout[real] = np.arange(len(flat_index))
    pool = np.zeros((len(lengths), len(flat_index)), dtype=np.float32)
    pool[np.repeat(np.arange(len(lengths)), lengths), np.arange(len(flat_index))] = 1.0
    pool /= lengths[:, None]
    return {
        "input_ids": token_ids[real],
        "positions": np.nonzero(real)[1].astype(np.int64),
        "layout": layout,
        "key_bias": ((1.0 - mask.astype(np.float32)) * np.float32(-1e9))[:, None, None, :],
        "unpad": flat_index.astype(np.int64),
        "pool": pool,
    }
