"""A local run under faults: exactly one final result per question in PostgreSQL.

The LLM simulator answers 30 % of the calls with 429, 10 % with 503 and lets 1 % hang
past the client's timeout. While the run goes on, one LLM worker and the storage
writer are killed with SIGKILL (the runner's supervisor restarts them, as Kubernetes
would), and the Flink scoring job is killed and started again from its latest
checkpoint (`QARUN_FLINK__RESTORE_FROM`, set by the runner at each start of the job).
Nothing is mocked: the runner is `qarun run --local`'s own LocalRunner, on real Kafka,
PostgreSQL, Redis and a Flink MiniCluster.

Size: 5,000 questions (a full-size run), sent at 100/s with 0.5 s simulated latency
(a fast model's) and short retry delays, so that the whole test stays within about
five minutes on the 2-core CI machine (the budget of the suite). The random faults do
not depend on load, so the workers' concurrency controller keeps its limit where
goodput is highest rather than cutting it for each failure. The kills come at fixed
fractions of the stored results, so they happen part-way whatever the machine's speed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from qarun_cli.local import latest_checkpoint
from qarun_cli.report import results
from qarun_cli.runner import LocalRunner, Options
from qarun_cli.specfile import load
from qarun_cli.state import RunDir
from qarun_core.summary import RunSummary, all_results_in
from qarun_workers.generator import question_id

RUN = "faults"
TOTAL = 5000
FAULTS = {"429": 0.30, "503": 0.10, "timeout": 0.01}
SPEC = f"""\
apiVersion: qarun.io/v1alpha1
kind: QARun
metadata:
  name: {RUN}
spec:
  traffic: {{distribution: constant, ratePerSecond: 100, total: {TOTAL}}}
  llm: {{model: qarun-sim, timeoutSeconds: 2}}
  workers: {{replicas: 2}}
  # 20 calls per generation: a question fails for good with probability 0.41^20.
  retry: {{maxAttempts: 20, overload: {{baseDelaySeconds: 1, maxDelaySeconds: 4}},
          quota: {{delaySeconds: 2}}}}
  kafka: {{partitions: 4}}
  flink: {{parallelism: 1, checkpointIntervalSeconds: 3}}
"""
# A guard against a hung run, not a speed bound: the scoring job's start (a Flink
# MiniCluster) took 118-222 s and its restart from a checkpoint as long again on the
# 2-core host shared with other work, the LLM stage about 100 s of the rest.
TIMEOUT = 720
# (component, fraction of TOTAL stored before it is killed); the scoring job also
# waits for a completed checkpoint, so that its restart has one to restore.
KILLS = (("llm-worker", 0.15), ("storage-writer", 0.35), ("scoring", 0.55))


class FaultPlan:
    """Called on every tick of the runner's loop: kills, then what the run left behind."""

    def __init__(self) -> None:
        self.killed: dict[str, dict[str, Any]] = {}
        self.final: dict[str, Any] = {}

    def __call__(self, runner: LocalRunner, summary: RunSummary) -> None:
        supervisor = runner.supervisor
        done = results(summary)
        for name, fraction in KILLS:
            if name in self.killed or done < fraction * TOTAL:
                continue
            checkpoint = latest_checkpoint(runner.checkpoints)
            if name == "scoring" and checkpoint is None:
                continue
            pid = supervisor.kill(name, 0)
            self.killed[name] = {"pid": pid, "results": done, "checkpoint": checkpoint}
            return  # one kill per tick: the next one finds the previous restarted
        if all_results_in(summary) and not self.final and runner.stack is not None:
            self.final = self.collect(runner)

    def collect(self, runner: LocalRunner) -> dict[str, Any]:
        assert runner.stack is not None
        supervisor = runner.supervisor
        with psycopg.connect(runner.stack.postgres.dsn) as conn:
            rows = conn.execute(
                "SELECT question_id, status, answer, attempts FROM results WHERE run = %s",
                (RUN,),
            ).fetchall()
            attempts = conn.execute(
                "SELECT count(*) FROM results r WHERE run = %s AND NOT EXISTS (SELECT 1 FROM"
                " attempts a WHERE a.run = r.run AND a.question_id = r.question_id"
                " AND a.attempt = r.best_attempt)",
                (RUN,),
            ).fetchone()
        live = runner.dir.live()
        assert live is not None
        sim_url = live.llm_base_url.removesuffix("/v1")
        with urllib.request.urlopen(f"{sim_url}/stats", timeout=10) as answer:  # noqa: S310
            sim = json.loads(answer.read())
        scoring = supervisor.replicas["scoring"][0]
        return {
            "rows": rows,
            "best_attempt_missing": attempts[0] if attempts else None,
            "sim": sim,
            "restarts": {name: supervisor.restarts(name) for name, _ in KILLS},
            "pids": {name: supervisor.pid(supervisor.replicas[name][0]) for name, _ in KILLS},
            "alive": {name: supervisor.alive(name) for name, _ in KILLS},
            "replicas": {name: supervisor.components[name].replicas for name, _ in KILLS},
            "scoring_restore": scoring.service.env.get("QARUN_FLINK__RESTORE_FROM", ""),
            "scoring_log": (runner.dir.logs / "scoring-0.log").read_text(errors="replace"),
        }


@pytest.fixture(scope="module")
def faulty_run() -> Iterator[dict[str, Any]]:
    # Not below pytest's base temp dir: PostgreSQL runs as its own user (as root) and
    # must reach its data dir (see test_local_run.py).
    state = Path(tempfile.mkdtemp(prefix="qarun-fault-test-"))
    state.chmod(0o755)
    try:
        spec = state / "faults.yaml"
        spec.write_text(SPEC)
        out_path = state / "runner.out"
        plan = FaultPlan()
        with out_path.open("w") as out:
            runner = LocalRunner(
                load(spec),
                Options(sim_latency=0.5, sim_faults=FAULTS, timeout=TIMEOUT, out=out),
                RunDir(RUN, root=state),
            )
            runner.on_tick = plan
            code = runner.run()
        yield {"code": code, "plan": plan, "output": out_path.read_text()}
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_run_completes_despite_the_kills(faulty_run: dict[str, Any]) -> None:
    assert faulty_run["code"] == 0, faulty_run["output"][-4000:]
    plan: FaultPlan = faulty_run["plan"]
    assert plan.final, "the run ended without the final tick"
    for name, fraction in KILLS:
        killed = plan.killed.get(name)
        assert killed is not None, f"{name} was never killed"
        # Killed part-way: later results had to come through the restarted process.
        assert fraction * TOTAL <= killed["results"] < TOTAL
        assert plan.final["restarts"][name] >= 1, f"{name} was not restarted"
        alive, wanted = plan.final["alive"][name], plan.final["replicas"][name]
        assert alive == wanted >= 1, f"{name}: {alive} of {wanted} running at the end"
        assert plan.final["pids"][name] != killed["pid"]
    for replica in ("llm-worker-0", "storage-writer-0", "scoring-0"):
        assert f"qarun: {replica} exited with code -9" in faulty_run["output"]


def test_scoring_job_restarted_from_its_checkpoint(faulty_run: dict[str, Any]) -> None:
    plan: FaultPlan = faulty_run["plan"]
    checkpoint = plan.killed["scoring"]["checkpoint"]
    restored = plan.final["scoring_restore"]
    assert checkpoint is not None
    assert restored.startswith("file://") and "/chk-" in restored
    # The restart restored the killed job's checkpoint (or a later one of the same job).
    assert Path(restored.removeprefix("file://")).parent == checkpoint.resolve().parent


def test_the_simulator_injected_the_faults(faulty_run: dict[str, Any]) -> None:
    outcomes = faulty_run["plan"].final["sim"]["outcomes"]
    ok = outcomes.get("ok", 0)
    assert ok >= TOTAL
    for fault, rate in FAULTS.items():
        seen = outcomes.get(f"fault_{fault}", 0)
        # Roughly the configured share of all calls (binomial, thousands of calls).
        assert 0.5 * rate < seen / sum(outcomes.values()) < 1.5 * rate, outcomes


def test_exactly_one_final_result_per_question(faulty_run: dict[str, Any]) -> None:
    final = faulty_run["plan"].final
    rows = final["rows"]
    ids = [row[0] for row in rows]
    expected = {question_id(RUN, seq) for seq in range(TOTAL)}
    assert len(ids) == len(set(ids)) == TOTAL
    assert set(ids) == expected, f"missing {len(expected - set(ids))}"
    statuses = {row[1] for row in rows}
    assert statuses <= {"validated", "exhausted"}, statuses  # none failed for good
    assert all(row[2] and row[3] >= 1 for row in rows)  # an answer, from some attempt
    assert final["best_attempt_missing"] == 0
