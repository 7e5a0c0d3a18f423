"""The summary contract between the API and its readers, on a real local run.

`qarun run --local --serve` runs a small QARun through the real pipeline (Kafka, a
Flink MiniCluster, PostgreSQL, Redis, the workers, the simulator with permanent
errors) and keeps its API up. Then the operator's own code reads the API's reply and
turns it into a status, which must be Succeeded with the database's counts, and the
API's figures must be those of `qarun report`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from qarun_core import plan as p
from qarun_core.spec import Phase, QARunSpec, QARunStatus
from qarun_core.summary import RunSummary
from qarun_operator.apply import read_summary
from qarun_operator.observe import Children, observe

QARUN = [sys.executable, "-m", "qarun_cli.main"]
RUN = "contract"
TOTAL = 40
SPEC = f"""\
apiVersion: qarun.io/v1alpha1
kind: QARun
metadata:
  name: {RUN}
spec:
  traffic: {{ratePerSecond: 20, total: {TOTAL}}}
  llm: {{model: qarun-sim}}
  workers: {{replicas: 1}}
  kafka: {{partitions: 2}}
  flink: {{parallelism: 1, checkpointIntervalSeconds: 5}}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The finished run, its API still serving (--serve), and its state directory."""
    state = Path(tempfile.mkdtemp(prefix="qarun-contract-"))  # see test_local_run's env
    env = {**os.environ, "QARUN_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
    spec_file = tmp_path_factory.mktemp("spec") / f"{RUN}.yaml"
    spec_file.write_text(SPEC)
    out = state / "runner.out"
    with out.open("w") as log:
        proc = subprocess.Popen(
            [*QARUN, "run", "-f", str(spec_file), "--local", "--serve", "--sim-latency", "0.05",
             "--sim-faults", "400=0.15", "--timeout", "400"],
            env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 480
        while "serving the API and dashboard" not in out.read_text():
            assert proc.poll() is None, f"qarun run exited early:\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no finished run:\n{out.read_text()[-3000:]}"
            time.sleep(0.5)
        live = json.loads((state / "runs" / RUN / "run.json").read_text())
        yield {"env": env, "live": live, "out": out}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(state, ignore_errors=True)


def ready_children(run: p.RunPlan) -> Children:
    """Every child of the plan present and ready, as the API server would show them."""
    ready = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    available = {
        "metadata": {"generation": 1},
        "spec": {"replicas": 0},
        "status": {"observedGeneration": 1, "replicas": 1, "availableReplicas": 1},
    }
    return Children(
        topics={t.name: ready for t in run.topics},
        deployments={c.name: available for c in run.components if c.kind is p.WorkloadKind.SERVICE},
        jobs={run.component(p.GENERATOR).name: {"status": {"active": 1}}},
        flink_sessions={run.flink.session: {"status": {"jobManagerDeploymentStatus": "READY"}}},
        flink_jobs={run.flink.job: {"status": {"jobStatus": {"state": "RUNNING"}}}},
    )


def database_counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        by_status = dict(
            conn.execute(
                "SELECT status, count(*) FROM results WHERE run = %s GROUP BY status",
                (RUN,),
            ).fetchall()
        )
        (answered,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM attempts WHERE run = %s", (RUN,)
        ).fetchone()
        (letters,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM dead_letters WHERE run = %s", (RUN,)
        ).fetchone()
    return {
        "validated": int(by_status.get("validated", 0)),
        "exhausted": int(by_status.get("exhausted", 0)),
        "failed": int(by_status.get("failed", 0)),
        "answered": int(answered),
        "deadLettered": int(letters),
    }


def test_operator_status_from_the_api_is_the_database_and_the_report(
    served: dict[str, Any],
) -> None:
    live = served["live"]
    url = f"{live['api_url']}/runs/{RUN}/summary"

    # The operator's reading code, unchanged: it must accept the API's reply.
    summary, error = read_summary(url, timeout=10)
    assert error is None
    assert summary is not None, "the API has no summary of the run"

    spec = QARunSpec.model_validate(
        {"llm": {"model": "qarun-sim"}, "traffic": {"total": TOTAL}, "workers": {"replicas": 1}}
    )
    run = p.plan(RUN, "ns", spec)
    seen = observe(
        run, spec, generation=1, children=ready_children(run), summary=summary,
        summary_error=None, previous=QARunStatus(), now=datetime.now(UTC),
    )  # fmt: skip
    status = seen.status
    assert status.phase is Phase.SUCCEEDED, status.message

    counts = database_counts(live["postgres"])
    progress = status.progress.model_dump(by_alias=True)
    assert {name: progress[name] for name in counts} == counts
    assert counts["validated"] + counts["exhausted"] + counts["failed"] == TOTAL
    assert counts["failed"] > 0 and counts["deadLettered"] >= counts["failed"]  # the 400s
    assert progress["total"] == progress["sent"] == TOTAL
    assert summary.generator_done
    assert summary.lag == 0  # every question read by the workers' group
    assert status.score.mean == summary.score.mean is not None
    assert status.usage == summary.usage and summary.usage.prompt_tokens > 0

    # `qarun report` shows the same figures (it reads the database and Redis itself).
    done = subprocess.run(
        [*QARUN, "report", RUN, "--json"],
        env=served["env"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reported = RunSummary.model_validate_json(done.stdout)
    assert reported.lag is None  # the CLI does not ask Kafka; everything else is equal
    assert reported.model_copy(update={"lag": 0}) == summary
    assert [a.attempt for a in summary.per_attempt][:1] == [1]
    assert summary.per_attempt[0].mean_gain is None

    # The API states its shape: FastAPI validated the reply against RunSummary, and the
    # OpenAPI document names it.
    with urllib.request.urlopen(f"{live['api_url']}/openapi.json", timeout=10) as r:  # noqa: S310
        openapi = json.load(r)
    ok = openapi["paths"]["/runs/{run}/summary"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunSummary"
    }
    assert "perAttempt" in openapi["components"]["schemas"]["RunSummary"]["properties"]
