"""What every workers entry point does first: `--help`, typed settings, secret-free
logging and the run's topics."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from qarun_workers import logs
from qarun_workers.kafka_io import ensure_run_topics
from qarun_workers.runtime import settle_heap
from qarun_workers.settings import Settings


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
    settle_heap()
    return settings, args
