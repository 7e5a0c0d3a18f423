"""The state of a local run as the runner sees it: the summary, polled each tick, and
the status file (`<run dir>/status.json`) that `qarun status` reads."""

from __future__ import annotations

import contextlib
import json
import time
from collections import deque
from pathlib import Path

import psycopg
import redis

from qarun_cli import report
from qarun_cli.supervisor import Supervisor
from qarun_core.summary import RunSummary
from qarun_devstack.stack import LocalStack


class Watcher:
    """The run's summary each tick (qarun_core.summary, read as `qarun report` reads it),
    and the recent rate of results for the progress line."""

    def __init__(self, stack: LocalStack, run: str) -> None:
        self.run = run
        self.dsn = stack.postgres.dsn
        self.redis_url = stack.redis.url
        self.history: deque[tuple[float, int]] = deque(maxlen=10)
        self.summary = report.summarize_empty(run)
        self.rate = 0.0  # results per second over the last few ticks

    def poll(self) -> RunSummary:
        with contextlib.suppress(psycopg.Error, redis.RedisError):  # busy: keep the last one
            self.summary = report.summarize(self.dsn, self.run, self.redis_url)
        now, done = time.monotonic(), report.results(self.summary)
        self.history.append((now, done))
        first_time, first_done = self.history[0]
        if now > first_time:
            self.rate = (done - first_done) / (now - first_time)
        return self.summary


def write_status(
    run_dir: Path, *, run: str, phase: str, watcher: Watcher, supervisor: Supervisor, api_url: str
) -> None:
    """Replace the run's status file at once (written aside, then renamed)."""
    processes = {
        name: {
            "replicas": supervisor.components[name].replicas,
            "alive": supervisor.alive(name),
            "restarts": supervisor.restarts(name),
            "pids": [supervisor.pid(r) for r in replicas],
        }
        for name, replicas in supervisor.replicas.items()
    }
    status = {
        "run": run,
        "phase": phase,
        "summary": watcher.summary.model_dump(mode="json", by_alias=True),
        "rate": watcher.rate,
        "processes": processes,
        "api_url": api_url,
        "updated": time.time(),
    }
    tmp = run_dir / "status.json.tmp"
    tmp.write_text(json.dumps(status, indent=2))
    tmp.replace(run_dir / "status.json")
