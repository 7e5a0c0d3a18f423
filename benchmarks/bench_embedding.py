"""Records per second of the embedding scorer as a library, per backend and thread count.

A record is one (answer, reference) pair from the sample data set
(workers/src/qarun_workers/data/sample.csv): the reference is the row's best_answer,
the answer is either that text perturbed (a fifth of its words dropped, two swapped)
or another row's best_answer. Pairs go to `score_many` in chunks, as the Flink job
sends them. Two modes:
  `cold`:   no reference cache, so both texts of every pair are encoded (first attempts);
  `cached`: references already cached, only answers are encoded (regenerations).

The machine's 2 cores are shared, so wall-clock rates swing with other work: each
variant runs in its own process, variants take turns round by round, and every result
carries process CPU-seconds per record (user + sys, all threads) and the load average.
GFLOP/s counts the model's useful multiply-adds (real tokens, padding excluded), and
the machine's `host_speed.sgemm_gflops_1_thread` (machine.py) is numpy's float32 matmul
on one core: the practical fp32 peak.

    .venv/bin/python benchmarks/bench_embedding.py [--backends int8,onnx,numpy]
        [--threads 1,2] [--rounds 2] [--out benchmarks/results/embedding.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HIDDEN, INTERMEDIATE, LAYERS = 384, 1536, 6
# Multiply-adds per token in the dense layers: QKV, attention output, FFN up and down.
DENSE_MACS = LAYERS * HIDDEN * (3 * HIDDEN + HIDDEN + 2 * INTERMEDIATE)


def perturb(text: str, rng: random.Random) -> str:
    words = [w for w in text.split() if rng.random() > 0.2] or text.split()
    if len(words) > 3:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def sample_pairs(count: int) -> list[tuple[str, str]]:
    """(answer, reference) pairs: half perturbed references, half other rows' answers."""
    from qarun_workers.dataset import read_rows  # noqa: PLC0415 - only in the child

    references = [row.best_answer for row in read_rows("sample")]
    rng = random.Random(5)
    pairs = []
    for n in range(count):
        reference = references[n % len(references)]
        other = references[(n * 7 + 3) % len(references)]
        pairs.append((perturb(reference, rng) if n % 2 == 0 else other, reference))
    return pairs


def flops(lengths: Sequence[int]) -> float:
    """Useful forward-pass FLOPs for texts of these token lengths: real tokens only, so
    a backend that computes padding (numpy) shows it as lower efficiency."""
    # Dense layers on every token; attention scores and context: 2·L²·H each per layer.
    return sum(2 * (n * DENSE_MACS + LAYERS * 2 * n * n * HIDDEN) for n in lengths)


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def measure(backend: str, threads: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Runs in the child process: one backend, one thread count, one mode."""
    from qarun_flink.scorers.base import Pair  # noqa: PLC0415
    from qarun_flink.scorers.embedding import EmbeddingScorer, make_encoder  # noqa: PLC0415

    pairs = [Pair("q", a, r) for a, r in sample_pairs(args.pairs)]
    cached = mode == "cached"
    scorer = EmbeddingScorer(make_encoder(backend, threads), cache_size=len(pairs) if cached else 0)
    scorer.score_many(pairs[: args.chunk])  # warm-up: allocations, kernel selection
    if cached:
        scorer.score_many(pairs)  # every reference into the cache
    tokenizer = scorer.model.tokenizer  # type: ignore[attr-defined]
    work = 0.0
    for start in range(0, len(pairs), args.chunk):
        chunk = pairs[start : start + args.chunk]
        texts = list(
            dict.fromkeys(
                [p.answer for p in chunk] + ([] if cached else [p.reference for p in chunk])
            )
        )
        work += flops([len(e.ids) for e in tokenizer.encode_batch(texts)])
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), cpu_seconds()
    for start in range(0, len(pairs), args.chunk):
        scorer.score_many(pairs[start : start + args.chunk])
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {
        "backend": backend,
        "threads": threads,
        "mode": mode,
        "records": len(pairs),
        "records_per_s": round(len(pairs) / wall, 1),
        "cpu_ms_per_record": round(1000 * cpu / len(pairs), 3),
        "gflops_per_s": round(work / wall / 1e9, 1),
        "gflops_per_cpu_s": round(work / cpu / 1e9, 1),
        "load_average_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def child(argv: list[str], threads: int) -> Any:
    # BLAS reads its thread count at import: each variant gets its own process.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [sys.executable, __file__, *argv], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backends", default="int8,onnx,numpy")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--modes", default="cold,cached")
    p.add_argument("--pairs", type=int, default=622, help="records per measurement")
    p.add_argument("--chunk", type=int, default=64, help="pairs per score_many call")
    p.add_argument("--batch-size", type=int, default=16, help="texts per forward pass")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        backend, threads, mode = args.child.split(":")
        print(json.dumps(measure(backend, int(threads), mode, args)))
        return
    common = ["--pairs", str(args.pairs), "--chunk", str(args.chunk)]
    common += ["--batch-size", str(args.batch_size)]
    variants = [
        (b, int(t), m)
        for m in args.modes.split(",")
        for b in args.backends.split(",")
        for t in args.threads.split(",")
    ]
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(args.rounds):  # round-robin: every variant sees the same load swings
        for b, t, m in variants:
            runs[(b, t, m)].append(child([*common, "--child", f"{b}:{t}:{m}"], t))
    results = [summarise(r) for r in runs.values()]
    from machine import describe  # noqa: PLC0415 - beside this script

    report = {
        "benchmark": "embedding scorer, library only (no Flink, no Kafka)",
        "pairs": args.pairs,
        "chunk": args.chunk,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "results": results,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "machine": describe(),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round by CPU per record (the load-robust number), with the spread."""
    best = sorted(runs, key=lambda r: r["cpu_ms_per_record"])[len(runs) // 2]
    return {
        **best,
        "records_per_s_rounds": [r["records_per_s"] for r in runs],
        "cpu_ms_per_record_rounds": [r["cpu_ms_per_record"] for r in runs],
        "cpu_ms_per_record_median": round(
            statistics.median(r["cpu_ms_per_record"] for r in runs), 3
        ),
    }


if __name__ == "__main__":
    main()
