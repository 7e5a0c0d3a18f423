"""The scoring job submitted to a standalone session cluster through Flink's REST API,
as QARun's operator (and the Flink operator) submit it: an empty jar, the PythonDriver
entry class, `-pym qarun_flink.job`, `main` running detached in the JobManager. The job
then scores answers, and a resubmission from its last checkpoint changes no result."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict

from harness import ScriptedWorker, TopicReader, create_topics, wait_for

from qarun_devstack.flink_session import FlinkSession
from qarun_devstack.kafka import KafkaBroker
from qarun_operator.flink_rest import FlinkRest

REFERENCE = "Photosynthesis lets green plants turn sunlight water and carbon dioxide into sugar"


def test_rest_submission_runs_detached_and_resumes_from_its_checkpoint(
    kafka: KafkaBroker, flink_session: FlinkSession
) -> None:
    rest = FlinkRest(flink_session.url)
    topics = create_topics(kafka, "t-session", partitions=2)
    args = [
        "-pym", "qarun_flink.job",
        "--run", topics.run, "--kafka.bootstrap-servers", kafka.bootstrap,
        "--flink.parallelism", "2",
        "--scoring.threshold", "0.75", "--scoring.max-regenerations", "1",
        "--flink.checkpoint-interval-seconds", "1",
    ]  # fmt: skip
    ids = [f"s{n:03d}" for n in range(40)]
    worker = ScriptedWorker(kafka, topics, {q: [REFERENCE] for q in ids}, REFERENCE).start()
    results = TopicReader(kafka, topics.results)
    job_id = uuid.uuid4().hex
    try:
        jar = rest.upload_empty_jar()
        # Without a detached main, this call fails (the job client of a web submission
        # cannot fetch the job's result) although the job may already run.
        assert rest.run_python_job(jar, args, job_id=job_id, parallelism=2, restore_from=None) == (
            job_id
        )
        wait_for(lambda: rest.job_states().get(job_id) == "RUNNING", 120, "the job RUNNING")
        worker.first_attempts(ids[:20])
        wait_for(lambda: len(results.poll()) >= 20, 120, "the first 20 results")
        wait_for(lambda: rest.latest_checkpoint(job_id) is not None, 60, "a checkpoint")
        time.sleep(2)  # a checkpoint after the 20 results were written
        checkpoint = rest.latest_checkpoint(job_id)
        assert checkpoint and checkpoint.startswith("file:")
        rest.cancel(job_id)
        wait_for(lambda: rest.job_states().get(job_id) == "CANCELED", 60, "the job CANCELED")

        resumed = uuid.uuid4().hex
        rest.run_python_job(jar, args, job_id=resumed, parallelism=2, restore_from=checkpoint)
        wait_for(lambda: rest.job_states().get(resumed) == "RUNNING", 120, "the resumed job")
        worker.first_attempts(ids[20:])
        wait_for(lambda: len(results.poll()) >= 40, 120, "all 40 results")
        # A replay after the restore may repeat a result (the storage writer's upsert
        # collapses it), never change it.
        outcomes: dict[str, set[tuple[object, ...]]] = defaultdict(set)
        for _, value in results.poll():
            result = json.loads(value)
            outcomes[result["question_id"]].add((result["best_attempt"], result["score"]))
        assert set(outcomes) == set(ids), "a question has no result"
        assert all(len(o) == 1 for o in outcomes.values()), outcomes
        rest.cancel(resumed)
        rest.delete_jar(jar)
    finally:
        worker.stop()
        results.close()
