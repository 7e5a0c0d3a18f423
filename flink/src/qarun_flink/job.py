"""The QARun scoring job: answers in, results / regenerations / metrics / dead letters out.

    answers ─► settle: parse + score + final at once (first attempt) ─► results
                 └ unparseable ─► dlq
                 └ the rest ─► key by (run, question_id) ─► route (keyed state)
      results ◄─ validated, or exhausted with the best attempt (keyed state)
      questions ◄─ below threshold with attempts left: attempt+1, history
      dlq ◄─ the scorer gave up (judge)
      metrics ◄─ tumbling processing-time window per run (Flink SQL) ◄─ an event per
                 scored answer

Settle is one vectorized (pandas) UDF on the Kafka table: Python sees Arrow batches
of raw answers and returns, per answer, where it goes (results, dlq or the keyed
route) with the record to send; Flink SQL splits the batch to the sinks. Per-record
Python (Beam fn-API) calls cost more than the parsing and scoring themselves
(profiled: ~130 us of framework per record against ~60 us of work), so only the
answers whose outcome depends on keyed state still cross to a per-record operator.
Lexical and embedding score inside Settle, a batch at a time (the model encodes a
batch per forward pass); the judge scores after Settle, through async I/O.

Delivery: at-least-once Kafka sinks by default, every record keyed by the question id
(the run is in the topic name). Why not Kafka transactions: an exactly-once sink
publishes only when a checkpoint completes, so each regeneration round trip (job →
questions → LLM worker → answers → job) would wait for a checkpoint (30 s by
default) and every consumer would have to read_committed. Instead the replay after a
restore is made harmless: keyed state drops any answer whose attempt was already
scored and closes a question once its final result is out, so a replay re-emits at
most the same final result (same question, attempt, answer and score), which the
storage writer's upsert on (run, question_id) collapses into one row. (A first attempt
that is final at once skips the state altogether: see Rules.final_without_state.) The
transactional mode is there (`--flink.delivery exactly-once`) for consumers that cannot
de-duplicate.

Run it locally on a MiniCluster with `python -m qarun_flink.job --run demo
--kafka.bootstrap-servers 127.0.0.1:9092` (QARUN_FLINK__CONNECTOR_JAR names the Kafka
connector jar);
on a session cluster it is the same module started by Flink's PythonDriver
(flink/deploy/flinksessionjob.yaml).

The pieces: graph (the wiring), records (what crosses operators), sql (DDL and the
metrics window), functions (Settle and the Flink function adapters), keyed_state (the
route's state codec), environment (checkpoints and workers), minicluster (readiness of
a local run).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from qarun_core.ports import free_port
from qarun_flink.environment import attached, environment
from qarun_flink.graph import build_job
from qarun_flink.minicluster import announce_running
from qarun_flink.params import ParamError, parse

log = logging.getLogger("qarun_flink")


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        params = parse(sys.argv[1:] if argv is None else argv)
    except ParamError as error:
        print(f"qarun-flink: {error}", file=sys.stderr)
        return 2
    rest_port = free_port() if params.ready_file else 0
    env = environment(params, rest_port)
    build_job(env, params)
    log.info(
        "submitting qarun-scoring-%s: scorer=%s threshold=%s max_attempts=%s parallelism=%s",
        params.run,
        params.scorer,
        params.threshold,
        params.max_attempts,
        params.parallelism,
    )
    job = env.execute_async(f"qarun-scoring-{params.run}")
    if params.ready_file:
        announce_running(job, Path(params.ready_file), rest_port)
    if not attached(env):
        # Submitted through a session cluster's REST API (how QARun's operator and the
        # Flink operator submit): main runs detached inside the JobManager, its job
        # client cannot fetch the result, and the job runs on after main returns.
        log.info("submitted job %s detached", job.get_job_id())
        return 0
    job.get_job_execution_result().result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
