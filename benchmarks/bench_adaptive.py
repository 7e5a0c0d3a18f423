"""The LLM worker's concurrency controller against a provider's faults and limits.

Real LLM worker and retry consumer processes on a real Kafka (and Redis for the
fleet's buckets), against the simulator at --latency (0.5 s) in four runs:

  baseline       one worker, no faults, questions offered at --rate (150/s), a rate
                 it keeps up with: answered/s over the steady part
  random_faults  the same with 30 % 429 (no headers) and 10 % 503 at random, whatever
                 the load: answered/s divided by the baseline's (`goodput_ratio`; an
                 ideal client loses only the questions whose 3 calls all fail, 6.4 %)
  capacity       one worker with a backlog, simulator capacity C=200 in flight (503
                 beyond): mean requests in flight at the simulator over the last 60 s
                 divided by C (`inflight_ratio`), and the share of calls refused
  rpm_limit      three workers with a backlog, a simulator limit of --rpm requests a
                 minute with OpenAI's rate-limit headers (the workers are not told the
                 limit): requests the simulator took over the last 60 s divided by
                 the limit (`rate_ratio`), and the share refused

Answered/s is the simulator's count of answers (each one an answer on the answers
topic). Writes benchmarks/results/adaptive.json. Run with `make bench-adaptive`
(or: .venv/bin/python benchmarks/bench_adaptive.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from qarun_core.messages import Question
from qarun_core.ports import free_port
from qarun_core.topics import RunTopics
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.process import Service, port_open
from qarun_devstack.redis import Redis
from qarun_workers.dataset import read_rows

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe

RESULTS = Path(__file__).parent / "results" / "adaptive.json"


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return str(response.read().decode())


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.kafka = KafkaBroker(workdir / "kafka")
        self.redis = Redis(workdir / "redis")
        self.rows = list(read_rows("sample"))

    def questions(self, run: str, start: int, count: int) -> Iterator[Question]:
        for n in range(start, start + count):
            row = self.rows[n % len(self.rows)]
            # A title of its own per question: the simulator draws each call's fate
            # from (seed, title, how often that title was asked).
            yield Question(
                run=run,
                question_id=f"{run}-{n}",
                title=f"{row.title} #{n}",
                content=row.content,
                best_answer=row.best_answer,
            )

    def produce(self, topic: str, questions: Iterator[Question]) -> None:
        producer = Producer({"bootstrap.servers": self.kafka.bootstrap, "linger.ms": 20})
        for q in questions:
            producer.produce(topic, q.to_bytes(), q.key())
            producer.poll(0)
        if producer.flush(60) > 0:
            raise RuntimeError("questions not written")

    def offer(self, run: str, topic: str, rate: float, seconds: float) -> threading.Thread:
        """Send `rate` questions a second for `seconds`, in tenths of a second."""

        def send() -> None:
            producer = Producer({"bootstrap.servers": self.kafka.bootstrap, "linger.ms": 5})
            started, sent = time.monotonic(), 0
            while (elapsed := time.monotonic() - started) < seconds:
                due = int(elapsed * rate) + 1
                for q in self.questions(run, sent, due - sent):
                    producer.produce(topic, q.to_bytes(), q.key())
                sent = max(sent, due)
                producer.poll(0)
                time.sleep(0.1)
            producer.flush(30)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread

    @contextmanager
    def simulator(self, name: str, *flags: str) -> Iterator[str]:
        port = free_port()
        argv = [sys.executable, "-m", "qarun_simulator", "--port", str(port),
                "--latency", str(self.args.latency), "--log-level", "WARNING", *flags]  # fmt: skip
        sim = Service(f"sim-{name}", argv, self.workdir / f"sim-{name}.log").start()
        try:
            sim.wait_ready(lambda: port_open(port), 30, "listening")
            yield f"http://127.0.0.1:{port}"
        finally:
            sim.stop()

    @contextmanager
    def pipeline(self, run: str, sim_url: str, workers: int) -> Iterator[list[int]]:
        """The run's topics, `workers` LLM workers and a retry consumer; their metrics ports."""
        topics = RunTopics(run)
        for topic in topics.all():
            self.kafka.create_topic(topic, partitions=6)
        ports = [free_port() for _ in range(workers)]
        env = {
            "QARUN_RUN": run,
            "QARUN_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap,
            "QARUN_KAFKA__CREATE_TOPICS": "false",
            "QARUN_LLM__BASE_URL": f"{sim_url}/v1",
            "QARUN_LLM__TIMEOUT_SECONDS": "30",
            "QARUN_STORAGE__REDIS_URL": self.redis.url,
        }
        services = [
            Service(
                f"{run}-retry",
                [sys.executable, "-m", "qarun_workers.retry"],
                self.workdir / f"{run}-retry.log",
                env=env,
            )
        ]
        for n, port in enumerate(ports):
            services.append(
                Service(
                    f"{run}-worker{n}",
                    [sys.executable, "-m", "qarun_workers.llm_worker"],
                    self.workdir / f"{run}-worker{n}.log",
                    env=env | {"QARUN_METRICS__PORT": str(port), "QARUN_INSTANCE": f"w{n}"},
                )
            )
        try:
            for service in services:
                service.start()
            for service, port in zip(services[1:], ports, strict=True):
                service.wait_ready(lambda p=port: port_open(p), 60, "serving metrics")
            yield ports
        finally:
            for service in services:
                service.stop(grace=40)

    def stats(self, sim_url: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(get(f"{sim_url}/stats"))
        return result

    def limit(self, port: int) -> float:
        for line in get(f"http://127.0.0.1:{port}/metrics").splitlines():
            if line.startswith("qarun_worker_concurrency_limit{"):
                return round(float(line.rsplit(" ", 1)[1]), 1)
        return float("nan")

    def offered(self, run: str, flags: tuple[str, ...]) -> dict[str, Any]:
        """One worker at --rate questions/s: answered/s over the steady part."""
        a = self.args
        with self.simulator(run, *flags) as sim, self.pipeline(run, sim, 1) as ports:
            sender = self.offer(run, RunTopics(run).questions, a.rate, a.seconds)
            time.sleep(a.warmup)
            first = self.stats(sim)
            time.sleep(a.seconds - a.warmup)
            last = self.stats(sim)
            limit = self.limit(ports[0])
            sender.join()
        seconds = last["clock"] - first["clock"]
        ok = last["outcomes"].get("ok", 0) - first["outcomes"].get("ok", 0)
        calls = last["requests"] - first["requests"]
        in_flight = (last["in_flight_seconds"] - first["in_flight_seconds"]) / seconds
        return {
            "offered_per_s": a.rate,
            "answered_per_s": round(ok / seconds, 1),
            "calls_per_s": round(calls / seconds, 1),
            "mean_in_flight": round(in_flight, 1),
            "concurrency_limit_at_end": limit,
            "outcomes": last["outcomes"],
        }

    def capacity(self) -> dict[str, Any]:
        run, a = "capacity", self.args
        capacity = a.capacity
        backlog = int(capacity / a.latency * (a.long_seconds + 30))
        self.kafka.create_topic(RunTopics(run).questions, partitions=6)
        self.produce(RunTopics(run).questions, self.questions(run, 0, backlog))
        with (
            self.simulator(run, "--capacity", str(capacity)) as sim,
            self.pipeline(run, sim, 1) as ports,
        ):
            first, last = self.last_minute(sim, a.long_seconds)
            limit = self.limit(ports[0])
        mean = (last["in_flight_seconds"] - first["in_flight_seconds"]) / (
            last["clock"] - first["clock"]
        )
        refused, calls = self.refused(first, last, "capacity_503")
        return {
            "capacity": capacity,
            "mean_in_flight": round(mean, 1),
            "inflight_ratio": round(mean / capacity, 3),
            "refused_fraction": round(refused / calls, 4),
            "calls": calls,
            "answered_per_s": round(
                (last["outcomes"].get("ok", 0) - first["outcomes"].get("ok", 0))
                / (last["clock"] - first["clock"]),
                1,
            ),
            "concurrency_limit_at_end": limit,
        }

    def rpm_limit(self) -> dict[str, Any]:
        run, a = "rpm", self.args
        backlog = int(a.rpm / 60 * (a.long_seconds + 30) * 1.5)
        self.kafka.create_topic(RunTopics(run).questions, partitions=6)
        self.produce(RunTopics(run).questions, self.questions(run, 0, backlog))
        with (
            self.simulator(run, "--rpm-limit", str(a.rpm)) as sim,
            self.pipeline(run, sim, a.rpm_workers) as ports,
        ):
            first, last = self.last_minute(sim, a.long_seconds)
            limits = [self.limit(port) for port in ports]
        refused, calls = self.refused(first, last, "limit_429")
        minutes = (last["clock"] - first["clock"]) / 60
        taken = (calls - refused) / minutes
        return {
            "workers": a.rpm_workers,
            "rpm_limit": a.rpm,
            "achieved_rpm": round(taken),
            "rate_ratio": round(taken / a.rpm, 3),
            "refused_fraction": round(refused / calls, 4),
            "calls": calls,
            "concurrency_limits_at_end": limits,
        }

    def last_minute(self, sim: str, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
        time.sleep(seconds - 60)
        first = self.stats(sim)
        time.sleep(60)
        return first, self.stats(sim)

    @staticmethod
    def refused(first: dict[str, Any], last: dict[str, Any], outcome: str) -> tuple[int, int]:
        refused = last["outcomes"].get(outcome, 0) - first["outcomes"].get(outcome, 0)
        return refused, last["requests"] - first["requests"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=150.0, help="offered questions/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="each offered run")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--long-seconds", type=float, default=90.0, help="capacity, rpm runs")
    parser.add_argument("--rpm", type=int, default=6000)
    parser.add_argument("--rpm-workers", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=200, help="the simulator's, in flight")
    parser.add_argument("--note", default="", help="stored with the results")
    parser.add_argument("--workdir", type=Path, help="keep the logs here (default: deleted)")
    parser.add_argument(
        "--only", default="", help="comma-separated runs (a trial: no results file unless --out)"
    )
    parser.add_argument("--out", type=Path, help=f"results file (default {RESULTS.name})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result: dict[str, Any] = {
        "machine": describe(),
        "latency_s": args.latency,
        "note": args.note or os.environ.get("QARUN_BENCH_NOTE", ""),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="bench-adaptive-") as tmp:
        bench = Bench(args, args.workdir or Path(tmp))
        bench.kafka.start()
        bench.redis.start()
        runs = {
            "baseline": lambda: bench.offered("baseline", ()),
            "random_faults": lambda: bench.offered(
                "faults", ("--rate-429", "0.3", "--rate-503", "0.1")
            ),
            "capacity": bench.capacity,
            "rpm_limit": bench.rpm_limit,
        }
        only = [name for name in args.only.split(",") if name] or list(runs)
        try:
            for name in only:
                result[name] = runs[name]()
                print(name, result[name], flush=True)
        finally:
            bench.redis.stop()
            bench.kafka.stop()
    if "baseline" in result:
        # The ratio measures the controller only at a rate the host itself keeps up with.
        base = result["baseline"]
        base["keeps_up"] = base["answered_per_s"] >= 0.95 * base["offered_per_s"]
    if "baseline" in result and "random_faults" in result:
        result["random_faults"]["goodput_ratio"] = round(
            result["random_faults"]["answered_per_s"] / result["baseline"]["answered_per_s"], 3
        )
    result["bench_seconds"] = round(time.monotonic() - started)
    result["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    if args.only and args.out is None:
        print(json.dumps(result, indent=2))
        return 0
    out = args.out or RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
