"""The local launcher's readiness: when a job on a local MiniCluster has every task up.

A local runner (tests, `qarun run --local`) passes `--ready-file`; the job then serves
Flink's REST API on a free port and writes the file once all its tasks run.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from pyflink.common import JobStatus
from pyflink.common.job_client import JobClient


def announce_running(job: JobClient, ready_file: Path, rest_port: int) -> None:
    """Write `ready_file` once every task of the job runs (a local runner holds the
    generator back until then: questions sent earlier only queue, and the backlog makes
    a burst). A task runs once its operators are open, i.e. its Python worker is up: the
    job itself reports RUNNING before that, 18 s before on a slow host."""
    url = f"http://127.0.0.1:{rest_port}/jobs/{job.get_job_id()}"
    while True:
        status = job.get_job_status().result()
        if status.is_globally_terminal_state():
            return  # the job's result says why
        if status is JobStatus.RUNNING and (tasks := running_tasks(url)) is not None:
            break
        time.sleep(0.2)
    partial = ready_file.with_suffix(".partial")
    partial.write_text(f"{job.get_job_id()}\n{tasks} tasks running\n")
    partial.replace(ready_file)


def running_tasks(url: str) -> int | None:
    """How many tasks the job has when all of them run (Flink's REST API); else None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our cluster
            vertices = json.load(response)["vertices"]
    except OSError:
        return None  # the REST endpoint is not up yet
    if not vertices or any(v["tasks"].get("RUNNING", 0) != v["parallelism"] for v in vertices):
        return None
    return sum(int(v["parallelism"]) for v in vertices)
