"""Helpers for the scoring job's tests: a judge endpoint, the job as a process, a worker.

The scoring job is always started as its own process (`python -m qarun_flink.job`),
as in production, so that a test can kill it hard and restore it from a checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from qarun_core.messages import Answer, Question
from qarun_core.topics import RunTopics
from qarun_devstack.flink import FlinkSetup
from qarun_devstack.kafka import KafkaBroker
from qarun_flink.scorers.lexical import token_f1, tokens

DATA = Path(__file__).with_name("data")


def labelled() -> list[dict[str, str]]:
    lines = (DATA / "labelled.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --- an OpenAI-compatible judge endpoint on loopback ---------------------------------


@dataclass
class JudgeEndpoint:
    """Grades by word overlap with the reference, in the rubric's JSON shape.

    It stands in for the LLM, not for the code under test: the openai client, the
    prompt, the JSON validation and the retries all run for real. The first reply to
    every fourth distinct prompt is malformed and the very first request fails with
    503, so both retry paths run; `always_malformed` makes every reply invalid.
    """

    url: str = ""
    requests: int = 0
    malformed: int = 0
    always_malformed: bool = False
    prompts: set[str] = field(default_factory=set)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, body: dict[str, object]) -> tuple[int, dict[str, object]]:
        with self.lock:
            self.requests += 1
            n = self.requests
        if n == 1:
            return 503, {"error": {"message": "warming up", "type": "server_error"}}
        prompt = str(body["messages"][-1]["content"])  # type: ignore[index]
        match = re.search(r"Reference answer:\n(.*)\n\nAnswer to grade:\n(.*)", prompt, re.S)
        assert match, prompt
        grade = round(10 * token_f1(tokens(match[2]), tokens(match[1])))
        with self.lock:
            first_time = prompt not in self.prompts
            self.prompts.add(prompt)
            bad = self.always_malformed or (first_time and len(self.prompts) % 4 == 0)
            self.malformed += bad
        if bad:
            content = '{"accuracy": "high"}'
        else:
            rubric = dict.fromkeys(
                ("accuracy", "completeness", "clarity", "concision", "usefulness"), grade
            )
            content = json.dumps(rubric | {"feedback": "be more specific"})
        return 200, {
            "id": f"judge-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "judge"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }


# --- the job as a process -------------------------------------------------------------


@dataclass
class JobProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL to the whole group: the driver, its JVM and the Python UDF workers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def job_starter(flink: FlinkSetup, workdir: Path) -> Iterator[Callable[..., JobProcess]]:
    """Starts `python -m qarun_flink.job ARGS` processes; kills them all on exit."""
    started: list[JobProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> JobProcess:
        log = workdir / f"job-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "qarun_flink.job", *args],
                env={**os.environ, **flink.env_vars, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, so kill() reaches every child
            )
        job = JobProcess(process, log)
        started.append(job)
        return job

    try:
        yield start
    finally:
        for job in started:
            job.kill()


def create_topics(kafka: KafkaBroker, run: str, partitions: int = 1) -> RunTopics:
    topics = RunTopics(run)
    for name in (topics.questions, topics.answers, topics.results, topics.metrics, topics.dlq):
        kafka.create_topic(name, partitions=partitions)
    return topics


# --- a stand-in for the LLM worker: answers each question from a script ---------------


class ScriptedWorker:
    """Answers attempt n of question q with script[q][n-1], as an LLM worker would.

    Attempt 1 is produced by `start()`; later attempts come from the questions topic,
    which the job writes to when it asks for a regeneration.
    """

    def __init__(
        self, kafka: KafkaBroker, topics: RunTopics, script: dict[str, list[str]], reference: str
    ) -> None:
        self.bootstrap = kafka.bootstrap
        self.topics = topics
        self.script = script
        self.reference = reference
        self.questions_seen: list[Question] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})

    def first_attempts(self, ids: list[str] | None = None) -> None:
        for question_id in ids or list(self.script):
            question = Question(
                run=self.topics.run,
                question_id=question_id,
                title=f"Question {question_id}",
                best_answer=self.reference,
            )
            self.answer(question)
        assert self.producer.flush(30) == 0

    def answer(self, question: Question) -> None:
        text = self.script[question.question_id][question.attempt - 1]
        answer = Answer.for_question(question, answer=text, model="scripted", latency_ms=1.0)
        self.producer.produce(self.topics.answers, key=answer.key(), value=answer.to_bytes())

    def start(self) -> ScriptedWorker:
        self._thread.start()
        return self

    def _loop(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"scripted-worker-{self.topics.run}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([self.topics.questions])
        try:
            while not self._stop.is_set():
                for message in consumer.consume(500, timeout=0.2):
                    if message.error():
                        continue
                    question = Question.from_bytes(message.value())
                    self.questions_seen.append(question)
                    self.answer(question)
                self.producer.poll(0)
        finally:
            consumer.close()
            self.producer.flush(10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class TopicReader:
    """Reads a topic from the beginning, accumulating records between calls."""

    def __init__(self, kafka: KafkaBroker, topic: str, committed_only: bool = False) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []
        self.consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": f"reader-{topic}-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed" if committed_only else "read_uncommitted",
            }
        )
        self.consumer.subscribe([topic])

    def poll(self) -> list[tuple[bytes | None, bytes]]:
        for message in self.consumer.consume(1000, timeout=0.2):
            if not message.error():
                self.records.append((message.key(), message.value()))
        return self.records

    def values(self) -> list[dict[str, object]]:
        return [json.loads(value) for _, value in self.poll()]

    def close(self) -> None:
        self.consumer.close()


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, job: JobProcess | None = None
) -> None:
    """Poll until the condition holds; fail with the job's log tail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if job is not None and job.process.poll() is not None:
            pytest.fail(
                f"the job exited ({job.process.returncode}) while waiting for {what}:\n"
                + job.tail()
            )
        time.sleep(0.3)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}" + (f"\n{job.tail()}" if job else "")
    )
