"""A worker's memory stays flat: RSS growth after warm-up stays under 50 MiB.

The target is flat memory over 100,000 questions; the suite runs 30,000 to stay within a few
minutes on 2 shared cores. QARUN_RSS_QUESTIONS=100000 runs the full figure.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer

from qarun_core.messages import Question

from .conftest import Roles, SimFactory, unique_run, wait_for
from .pipeline import Infra, pipeline_env, start_pipeline

QUESTIONS = int(os.environ.get("QARUN_RSS_QUESTIONS", "30000"))
MIB = 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_worker_memory_stays_flat(
    infra: Infra, simulator: SimFactory, roles: Callable[[dict[str, str]], Roles]
) -> None:
    sim = simulator("--latency", "0.005")
    run = unique_run()
    r = roles(pipeline_env(run, infra, sim.base_url) | {"QARUN_LLM__MAX_CONCURRENCY": "256"})
    start_pipeline(r, run, infra.kafka, generator=False, storage=False)
    worker = next(s for s in r.services if s.name == "worker")
    assert worker.proc is not None
    producer = Producer({"bootstrap.servers": infra.kafka.bootstrap, "linger.ms": 20})
    for n in range(QUESTIONS):
        q = Question(
            run=run,
            question_id=f"m{n}",
            title=f"Question number {n}?",
            content="Some context " * (n % 7),
            best_answer="An answer.",
        )
        producer.produce(f"qarun.{run}.questions", q.to_bytes(), q.key())
        if n % 10_000 == 0:
            producer.flush(30)
    assert producer.flush(60) == 0

    def answered() -> int:
        return int(sim.stats()["outcomes"].get("ok", 0))

    wait_for(lambda: answered() >= QUESTIONS // 10, 300, "warm-up")
    warm = rss(worker.proc.pid)
    wait_for(lambda: answered() >= QUESTIONS, 1200, f"{QUESTIONS} answers", every=2)
    grown = rss(worker.proc.pid) - warm
    assert worker.alive()
    print(f"worker RSS {warm / MIB:.1f} MiB after warm-up, grew {grown / MIB:.1f} MiB")
    assert grown < 50 * MIB, f"RSS grew {grown / MIB:.1f} MiB over {QUESTIONS} questions"
