"""How a service process runs: its event loop and its heap."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


# Allocations between young-generation collections (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Moves everything loaded so far (modules, schemas, clients) out of the collector's
    reach, and collects the young generation less often.

    A full collection walks every tracked object (~100k after start-up): with 300 LLM
    calls in flight one ran every ~30 s and stopped the event loop for 149 ms; after
    the freeze none ran in the same 30 s. A call through the openai client allocates
    thousands of objects, so at the default threshold young collections (each walking
    the objects of every call in flight) took 0.12 of the client's 0.84 CPU-ms per
    call; at 20,000 they take 0.01 of 0.68 (measured, 1,500 calls in flight)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Runs an async entry point on uvloop: with thousands of calls in flight the loop
    itself is a good part of a worker's CPU, and uvloop's is measured cheaper
    (benchmarks/bench_worker.py runs its baselines on the same loop)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
