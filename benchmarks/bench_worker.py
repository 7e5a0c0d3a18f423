"""One LLM worker process against the simulator, beside its two references.

Three runs against the same simulator (2.75 s latency, on the same machine), each
`--seconds` long at up to `--in-flight` requests:

  pipeline  the real worker process: Kafka questions in, answers out, offsets stored
  baseline  a plain asyncio loop making the same calls with the same client, no Kafka
  raw       raw aiohttp requests: the machine's ceiling

Sustained answers/s is counted over the steady part (after the ramp-up), peak in
flight is what the simulator saw. Writes benchmarks/results/worker.json.
Run with `make bench-worker` (or: .venv/bin/python benchmarks/bench_worker.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from confluent_kafka import Consumer, Producer

from qarun_core.messages import Answer, Question
from qarun_core.ports import free_port
from qarun_core.topics import RunTopics
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.process import Service, port_open
from qarun_workers.dataset import read_rows
from qarun_workers.llm_client import ask, make_client, prompt
from qarun_workers.runtime import run_async
from qarun_workers.settings import LLMSettings

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe

RESULTS = Path(__file__).parent / "results" / "worker.json"
RUN = "bench"


def sim_stats(port: int, reset: bool = False) -> dict[str, Any]:
    path = "/stats/reset" if reset else "/stats"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method="POST" if reset else "GET"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        result: dict[str, Any] = json.load(response)
        return result


def questions(count: int) -> list[Question]:
    rows = list(read_rows("sample"))
    return [
        Question(
            run=RUN,
            question_id=f"b{n}",
            title=rows[n % len(rows)].title,
            content=rows[n % len(rows)].content,
            best_answer=rows[n % len(rows)].best_answer,
        )
        for n in range(count)
    ]


async def closed_loop(
    seconds: float, in_flight: int, call: Callable[[int], Awaitable[None]]
) -> list[float]:
    """`in_flight` tasks calling back to back for `seconds`; the completion times."""
    done: list[float] = []
    deadline = time.monotonic() + seconds

    async def lane(n: int) -> None:
        while time.monotonic() < deadline:
            await call(n)
            done.append(time.monotonic())

    await asyncio.gather(*(lane(n) for n in range(in_flight)))
    return done


def steady_rate(times: list[float], latency: float, end: float) -> float:
    """Answers per second after the ramp: from two round trips past the first answer."""
    if not times:
        return 0.0
    start = min(times) + 2 * latency
    inside = [t for t in times if start <= t <= end]
    return len(inside) / (end - start) if end > start else 0.0


def baseline(base_url: str, seconds: float, in_flight: int, latency: float) -> dict[str, Any]:
    settings = LLMSettings(base_url=base_url, max_concurrency=in_flight, timeout_seconds=60)
    texts = [prompt(q) for q in questions(1000)]

    async def run() -> list[float]:
        client = make_client(settings, "")
        try:

            async def call(n: int) -> None:
                await ask(client, settings, texts[n % len(texts)])

            return await closed_loop(seconds, in_flight, call)
        finally:
            await client.close()

    started = time.monotonic()
    times = run_async(run())
    return {
        "answers_per_s": round(steady_rate(times, latency, started + seconds)),
        "answers": len(times),
    }


def raw(base_url: str, seconds: float, in_flight: int, latency: float) -> dict[str, Any]:
    bodies = [
        json.dumps(
            {"model": "qarun-sim", "messages": [{"role": "user", "content": prompt(q)}]}
        ).encode()
        for q in questions(1000)
    ]

    async def run() -> list[float]:
        connector = aiohttp.TCPConnector(limit=in_flight + 16)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def call(n: int) -> None:
                async with session.post(
                    f"{base_url}/chat/completions",
                    data=bodies[n % 1000],
                    headers={"Content-Type": "application/json"},
                ) as r:
                    await r.json()

            return await closed_loop(seconds, in_flight, call)

    started = time.monotonic()
    times = run_async(run())
    return {
        "answers_per_s": round(steady_rate(times, latency, started + seconds)),
        "answers": len(times),
    }


def fill(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for q in questions(count):
        producer.produce(topic, q.to_bytes(), q.key())
        producer.poll(0)
    if producer.flush(60) > 0:
        raise RuntimeError("questions not written")


def answer_times(bootstrap: str, topic: str) -> list[float]:
    """Broker timestamps (seconds) of every answer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-read",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    times: list[float] = []
    idle = 0
    while idle < 6:
        batch = consumer.consume(10_000, timeout=0.5)
        real = [m for m in batch if m.error() is None]
        idle = 0 if real else idle + 1
        times += [m.timestamp()[1] / 1000 for m in real]
    consumer.close()
    Answer.from_bytes(real[0].value()) if real else None  # the payload is a valid Answer
    return times


def pipeline(
    kafka: KafkaBroker, base_url: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    topics = RunTopics(RUN)
    for name in topics.all():
        kafka.create_topic(name, partitions=6)
    fill(kafka.bootstrap, topics.questions, int(args.in_flight / args.latency * args.seconds * 1.3))
    env = {
        **os.environ,
        "QARUN_RUN": RUN,
        "QARUN_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
        "QARUN_LLM__BASE_URL": base_url,
        "QARUN_LLM__MAX_CONCURRENCY": str(args.in_flight),
        "QARUN_LLM__INITIAL_CONCURRENCY": str(args.in_flight),
        "QARUN_LLM__TIMEOUT_SECONDS": "60",
        "QARUN_KAFKA__CREATE_TOPICS": "false",
    }
    worker = Service(
        "llm-worker",
        [sys.executable, "-m", "qarun_workers.llm_worker"],
        workdir / "worker.log",
        env=env,
    ).start()
    time.sleep(args.seconds)
    end = time.time()  # broker timestamps are wall-clock time
    worker.stop(grace=90)
    times = answer_times(kafka.bootstrap, topics.answers)
    steady = steady_rate(times, args.latency, end)
    return {"answers_per_s": round(steady), "answers": len(times)}


def start_simulator(latency: float, workdir: Path) -> tuple[Service, int]:
    port = free_port()
    sim = Service(
        "llm-sim",
        [
            sys.executable,
            "-m",
            "qarun_simulator",
            "--port",
            str(port),
            "--latency",
            str(latency),
            "--log-level",
            "WARNING",
        ],
        workdir / "sim.log",
    ).start()
    sim.wait_ready(lambda: port_open(port), 30, "listening")
    return sim, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--in-flight", type=int, default=2500)
    parser.add_argument("--latency", type=float, default=2.75)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        workdir = Path(tmp)
        sim, port = start_simulator(args.latency, workdir)
        kafka = KafkaBroker(workdir / "kafka").start()
        base_url = f"http://127.0.0.1:{port}/v1"
        result: dict[str, Any] = {
            "machine": describe(),
            "latency_s": args.latency,
            "in_flight_target": args.in_flight,
            "seconds": args.seconds,
        }
        try:
            for name, run in (
                ("pipeline", lambda: pipeline(kafka, base_url, args, workdir)),
                (
                    "baseline",
                    lambda: baseline(base_url, args.seconds, args.in_flight, args.latency),
                ),
                ("raw_aiohttp", lambda: raw(base_url, args.seconds, args.in_flight, args.latency)),
            ):
                sim_stats(port, reset=True)
                result[name] = run()
                result[name]["peak_in_flight"] = sim_stats(port)["peak_in_flight"]
                print(name, result[name], flush=True)
        finally:
            kafka.stop()
            sim.stop()
    base = result["baseline"]["answers_per_s"]
    result["pipeline_vs_baseline"] = (
        round(result["pipeline"]["answers_per_s"] / base, 3) if base else None
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
