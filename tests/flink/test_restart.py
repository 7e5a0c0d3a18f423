"""Killed hard mid-stream and restored from its last checkpoint, the job still gives
every question exactly one final result: replays may repeat a result, never change it."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from harness import JobProcess, ScriptedWorker, TopicReader, create_topics, wait_for

from qarun_devstack.kafka import KafkaBroker

REFERENCE = "Photosynthesis lets green plants turn sunlight water and carbon dioxide into sugar"
GOOD, HALF, WEAK, OFF = (
    REFERENCE,
    "green plants turn sunlight into food",
    "plants need sunlight",
    "the match was played in a stadium",
)
# (script, best attempt, exhausted) by question number modulo 4
PATHS = [
    ([GOOD], 1, False),
    ([OFF, GOOD], 2, False),
    ([HALF, OFF, WEAK], 1, True),
    ([WEAK, OFF, GOOD], 3, False),
]
QUESTIONS = 240


def latest_checkpoint(root: Path) -> Path | None:
    done = [p.parent for p in root.glob("*/chk-*/_metadata")]
    return max(done, key=lambda p: int(re.sub(r"\D", "", p.name)), default=None)


def test_restore_after_hard_kill_gives_one_final_result_per_question(
    kafka: KafkaBroker, start_job: Callable[..., JobProcess], tmp_path: Path
) -> None:
    topics = create_topics(kafka, "t-restart", partitions=2)
    ids = [f"r{n:04d}" for n in range(QUESTIONS)]
    script = {qid: PATHS[n % 4][0] for n, qid in enumerate(ids)}
    worker = ScriptedWorker(kafka, topics, script, REFERENCE).start()
    checkpoints = tmp_path / "checkpoints"
    args = [
        *(
            "--run",
            topics.run,
            "--kafka.bootstrap-servers",
            kafka.bootstrap,
            "--flink.parallelism",
            "2",
        ),
        *("--scoring.threshold", "0.75", "--scoring.max-regenerations", "2"),
        *(
            "--flink.checkpoint-interval-seconds",
            "1",
            "--flink.checkpoint-dir",
            checkpoints.as_uri(),
        ),
    ]
    results = TopicReader(kafka, topics.results)
    try:
        first = start_job(*args)
        worker.first_attempts(ids[: QUESTIONS // 2])
        wait_for(
            lambda: len(results.poll()) >= 20 and latest_checkpoint(checkpoints) is not None,
            120,
            "first results and a completed checkpoint",
            first,
        )
        worker.first_attempts(ids[QUESTIONS // 2 :])
        time.sleep(1.0)  # let the second half get under way, then pull the plug
        first.kill()
        before = len({r[0] for r in results.poll()})
        assert before < QUESTIONS, "the job finished before it was killed: nothing to test"

        restored_from = latest_checkpoint(checkpoints)
        assert restored_from is not None
        second = start_job(*args, "--flink.restore-from", restored_from.as_uri())
        wait_for(
            lambda: len({r[0] for r in results.poll()}) >= QUESTIONS,
            240,
            f"results for all {QUESTIONS} questions after the restore",
            second,
        )
        time.sleep(2.0)  # give late duplicates a chance to show up before judging them
        finals = defaultdict(set)
        for value in results.values():
            finals[value["question_id"]].add(
                (value["best_attempt"], value["exhausted"], value["answer"], value["score"])
            )
    finally:
        worker.stop()
        results.close()

    assert sorted(finals) == ids  # none lost
    for n, qid in enumerate(ids):
        _, best_attempt, exhausted = PATHS[n % 4]
        [(attempt, flagged, answer, _)] = finals[qid]  # one distinct final result
        assert (attempt, flagged, answer) == (best_attempt, exhausted, script[qid][attempt - 1])
