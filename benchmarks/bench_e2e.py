"""Whole local runs end to end, beside the no-pipeline baseline, in one invocation.

One LLM simulator (2.75 s latency by default) serves every measurement:

  capacity   `qarun run --local` as the runner realises it (LocalRunner): generator,
             --replicas LLM workers, retry worker, the PyFlink scoring job, storage
             writer and API on real Kafka, PostgreSQL and Redis, offered --rate
             questions/s: how many questions/s the whole pipeline stores
  sustained  the same at --sustained-rate, a rate the pipeline keeps up with, so the
             pipeline overhead is measured without a queue in front of it
  baseline   a plain asyncio loop making the same calls with the same client
             (qarun_workers.llm_client) at the capacity run's concurrency, no Kafka

The scoring job (a Flink MiniCluster) takes a while to start, and questions sent
before it runs only queue, so each run is measured over a steady window: from
--warmup seconds after the first result is stored (the sustained run also waits for
that queue to drain), for --window seconds; then the run is stopped. The generator
cycles the data set for the whole run (durationSeconds), each pass with new question
ids. Questions/s end to end is the slower of two rates in the window: results stored
in PostgreSQL, and first answers from the LLM (the simulator's count, regenerations
left out). Either alone can overstate it: a stage may still be draining a backlog
from the start (the workers' concurrency ramps up from a small limit), and the LLM
stage can run ahead of a stage that falls behind. (The runner starts the generator
once the scoring job runs; before that, Flink's start-up left a backlog that the
stages behind the LLM drained in the window, and the stored rate alone overstated
the capacity.) Pipeline overhead is, for each question sent in the window (but its last
10 s) and answered by one LLM call on its first attempt, the time from the generator
sending it to its row in PostgreSQL (`stored_at - first_sent_at`) minus that call's
LLM latency (`attempts.latency_ms`); p50/p99.
Writes benchmarks/results/e2e.json. Run with `make bench-e2e`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from qarun_cli.report import results
from qarun_cli.runner import LocalRunner, Options
from qarun_cli.specfile import load
from qarun_cli.state import RunDir
from qarun_core.summary import RunSummary, all_results_in

sys.path.insert(0, str(Path(__file__).parent))
from bench_worker import baseline, sim_stats, start_simulator
from machine import describe

RESULTS = Path(__file__).parent / "results" / "e2e.json"

SPEC = """\
apiVersion: qarun.io/v1alpha1
kind: QARun
metadata:
  name: {run}
spec:
  traffic: {{distribution: constant, ratePerSecond: {rate}, durationSeconds: {duration}}}
  llm: {{model: qarun-sim, maxConcurrency: {concurrency}, timeoutSeconds: 60}}
  workers: {{replicas: {replicas}}}
  kafka: {{partitions: {partitions}}}
  flink: {{parallelism: {parallelism}, checkpointIntervalSeconds: 10}}
"""

# Where the overhead goes, for the same questions: generator to worker (Kafka, the
# worker's queue and its client outside the call), the scoring job (answers topic to
# the result's creation), and the sink to PostgreSQL (results topic, storage writer).
STAGES = """
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
           extract(epoch FROM a.answered_at - r.first_sent_at) * 1000 - a.latency_ms),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
           extract(epoch FROM r.finished_at - a.answered_at) * 1000),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
           extract(epoch FROM r.stored_at - r.finished_at) * 1000)
FROM results r JOIN attempts a USING (run, question_id)
WHERE r.run = %s AND r.attempts = 1 AND a.attempt = 1 AND a.retries = 0
  AND r.first_sent_at >= %s AND r.first_sent_at < %s
"""

STORED = "SELECT count(*) FROM results WHERE run = %s AND stored_at >= %s AND stored_at < %s"
OVERHEAD = """
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY
           extract(epoch FROM r.stored_at - r.first_sent_at) * 1000 - a.latency_ms),
       percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY a.latency_ms),
       count(*)
FROM results r JOIN attempts a USING (run, question_id)
WHERE r.run = %s AND r.attempts = 1 AND a.attempt = 1 AND a.retries = 0
  AND r.first_sent_at >= %s AND r.first_sent_at < %s
"""


@dataclass(frozen=True)
class Phase:
    run: str
    rate: float
    replicas: int
    drain: bool  # open the window only once the start-up backlog is stored


def percentiles(values: list[float] | None) -> dict[str, int]:
    return {"p50": round(values[0]), "p99": round(values[1])} if values else {}


def first_answers(port: int) -> int:
    """Answers the simulator gave to first attempts so far."""
    stats = sim_stats(port)
    return int(stats["outcomes"].get("ok", 0)) - int(stats["regenerations"])


def measure(dsn: str, run: str, start: float, end: float) -> dict[str, Any]:
    """The stored results of the window [start, end) (epoch seconds)."""
    t0, t1 = (datetime.fromtimestamp(t, UTC) for t in (start, end))
    # Questions sent in the last seconds of the window may still be on their way.
    sent_by = datetime.fromtimestamp(end - min(10.0, (end - start) / 3), UTC)
    with psycopg.connect(dsn) as conn:
        stored = conn.execute(STORED, (run, t0, t1)).fetchone()
        row = conn.execute(OVERHEAD, (run, t0, sent_by)).fetchone()
        stages = conn.execute(STAGES, (run, t0, sent_by)).fetchone()
        total = conn.execute("SELECT count(*) FROM results WHERE run = %s", (run,)).fetchone()
    assert stored is not None and row is not None and total is not None and stages is not None
    overhead, llm, single = row
    to_worker, scoring, storing = stages
    return {
        "window_s": round(end - start, 1),
        "results_in_window": int(stored[0]),
        "results_total": int(total[0]),
        "stored_per_s": round(int(stored[0]) / (end - start), 1),
        "overhead_ms": percentiles(overhead),
        "overhead_stages_ms": {
            "generator_to_answer": percentiles(to_worker),
            "answer_to_result": percentiles(scoring),
            "result_to_stored": percentiles(storing),
        },
        "llm_latency_ms": percentiles(llm),
        "overhead_questions": int(single),
    }


def write_spec(phase: Phase, args: argparse.Namespace, workdir: Path) -> Path:
    spec = workdir / f"{phase.run}.yaml"
    spec.write_text(
        SPEC.format(
            run=phase.run,
            rate=phase.rate,
            # The generator sends for the whole run, however long Flink takes to come
            # up; the benchmark stops the run once its window is measured.
            duration=int(args.timeout),
            concurrency=args.concurrency,
            replicas=phase.replicas,
            partitions=args.partitions,
            parallelism=args.parallelism,
        )
    )
    return spec


def pipeline(
    phase: Phase, sim_port: int, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    measured: dict[str, Any] = {"offered_per_s": phase.rate, "replicas": phase.replicas}
    first_result: list[float] = []
    window: list[float] = []
    answered: list[int] = []  # first answers from the LLM when the window opens
    started_wall = time.time()

    def on_tick(runner: LocalRunner, summary: RunSummary) -> None:
        now = time.time()
        done = results(summary)
        if done and not first_result:
            first_result.append(now)
            print(f"{phase.run}: first result after {now - started_wall:.0f} s", flush=True)
        if not first_result or runner.stack is None:
            return
        if not window and now >= first_result[0] + args.warmup:
            # The sustained run waits for the queue that built up while Flink started
            # to drain, so its window sees the pipeline at the offered rate.
            backlog = summary.progress.sent - done
            if (
                not phase.drain
                or backlog <= phase.rate * (args.latency + 1)
                or (now >= first_result[0] + args.warmup + args.max_drain)
            ):
                window.append(now)
                answered.append(first_answers(sim_port))
                print(f"{phase.run}: window opens, backlog {backlog}", flush=True)
        if not window:
            return
        start = window[0]
        if now >= start + args.window or all_results_in(summary):
            dsn = runner.stack.postgres.dsn
            end = min(now, start + args.window)
            llm_rate = (first_answers(sim_port) - answered[0]) / (now - start)
            measured.update(measure(dsn, phase.run, start, end))
            measured["llm_first_answers_per_s"] = round(llm_rate, 1)
            measured["questions_per_s"] = min(measured["stored_per_s"], round(llm_rate, 1))
            measured["startup_to_first_result_s"] = round(first_result[0] - started_wall, 1)
            raise KeyboardInterrupt  # the runner stops every process and returns 130

    out_path = workdir / f"{phase.run}.out"
    with out_path.open("w") as out:
        runner = LocalRunner(
            load(write_spec(phase, args, workdir)),
            Options(llm_base_url=f"http://127.0.0.1:{sim_port}/v1", timeout=args.timeout, out=out),
            RunDir(phase.run, root=workdir / "state"),
        )
        runner.on_tick = on_tick
        code = runner.run()
    if code not in (0, 130) or "questions_per_s" not in measured:
        tail = out_path.read_text()[-3000:]
        raise SystemExit(f"{phase.run} ended before its window was measured ({code}):\n{tail}")
    measured["kept_up"] = measured["questions_per_s"] >= 0.95 * phase.rate
    return measured


def table(result: dict[str, Any]) -> str:
    c, s, b = result["capacity"], result["sustained"], result["baseline"]
    rows = [
        ("LLM latency (simulated)", f"{result['latency_s']} s"),
        ("measured window", f"{c['window_s']} s after a {result['warmup_s']} s warm-up"),
        (
            "capacity: offered, workers x concurrency",
            f"{c['offered_per_s']}/s, {c['replicas']} x {result['concurrency']}",
        ),
        (
            "capacity: questions/s end to end (stored, first LLM answers)",
            f"{c['questions_per_s']} ({c['stored_per_s']}, {c['llm_first_answers_per_s']})",
        ),
        ("baseline answers/s (plain asyncio, same client)", f"{b['answers_per_s']}"),
        ("capacity / baseline", f"{result['capacity_vs_baseline']}"),
        ("peak in flight capacity / baseline", f"{c['peak_in_flight']} / {b['peak_in_flight']}"),
        (
            "sustained: offered, stored/s, kept up",
            f"{s['offered_per_s']}/s, {s['questions_per_s']}/s, {s['kept_up']}",
        ),
        (
            "sustained: pipeline overhead p50 / p99",
            f"{s['overhead_ms'].get('p50')} / {s['overhead_ms'].get('p99')} ms",
        ),
        ("start-up to first result", f"{c['startup_to_first_result_s']} s"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=2.75, help="simulated LLM latency, s")
    parser.add_argument("--rate", type=float, default=1000.0, help="questions/s offered")
    parser.add_argument("--replicas", type=int, default=4, help="LLM workers")
    parser.add_argument(
        "--sustained-rate", type=float, default=200.0, help="questions/s of the overhead run"
    )
    parser.add_argument("--sustained-replicas", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=20.0, help="s after the first result")
    parser.add_argument("--window", type=float, default=45.0, help="s measured")
    parser.add_argument(
        "--max-drain", type=float, default=180.0, help="s to wait for the backlog to drain"
    )
    parser.add_argument("--concurrency", type=int, default=1000, help="per worker, at most")
    parser.add_argument("--partitions", type=int, default=8)
    # One subtask scores lexical at several thousand answers/s, and a second one only
    # adds its share of the per-bundle costs, which dominate at these rates.
    parser.add_argument("--parallelism", type=int, default=1, help="of the scoring job")
    parser.add_argument("--baseline-seconds", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="give a run up after, s")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    phases = {
        "capacity": Phase("bench-e2e-capacity", args.rate, args.replicas, drain=False),
        "sustained": Phase(
            "bench-e2e-sustained", args.sustained_rate, args.sustained_replicas, drain=True
        ),
    }
    result: dict[str, Any] = {
        "machine": describe(),
        "load_average_start": os.getloadavg(),
        "latency_s": args.latency,
        "warmup_s": args.warmup,
        "concurrency": args.concurrency,
        "goals": {"questions_per_s": 1000, "overhead_p99_ms": 250},
    }
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # noqa: S103 - PostgreSQL may run as its own user
        sim, port = start_simulator(args.latency, workdir)
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            for name, phase in phases.items():
                sim_stats(port, reset=True)
                result[name] = pipeline(phase, port, args, workdir)
                result[name]["peak_in_flight"] = sim_stats(port)["peak_in_flight"]
                print(name, result[name], flush=True)
            sim_stats(port, reset=True)
            in_flight = args.replicas * args.concurrency
            result["baseline"] = baseline(base_url, args.baseline_seconds, in_flight, args.latency)
            result["baseline"]["peak_in_flight"] = sim_stats(port)["peak_in_flight"]
            print("baseline", result["baseline"], flush=True)
        finally:
            sim.stop()
    result["load_average_end"] = os.getloadavg()
    base = result["baseline"]["answers_per_s"]
    result["capacity_vs_baseline"] = (
        round(result["capacity"]["questions_per_s"] / base, 3) if base else None
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
