"""What every workers entry point does first: `--help`, typed settings, secret-free
logging and the run's topics."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import uvloop

from qarun_workers import logs
from qarun_workers.kafka_io import ensure_run_topics
from qarun_workers.settings import Settings

T = TypeVar("T")


def prepare(
    prog: str,
    doc: str | None,
    argv: Sequence[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[Settings, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    settings = Settings()
    logs.setup(settings.log_level, secrets=settings.secrets())
    ensure_run_topics(settings)
    return settings, args


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Runs an async entry point on uvloop: with thousands of calls in flight the loop
    itself is a good part of a worker's CPU, and uvloop's is measured cheaper
    (benchmarks/bench_worker.py runs its baselines on the same loop)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
