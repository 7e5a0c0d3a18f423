"""The local runner: one QARun realised as processes on this machine.

    LocalStack (Kafka, PostgreSQL, Redis, Flink wiring)      qarun_devstack
    topics of the run                                        as the plan names them
    llm-sim, api, storage-writer, retry, llm-worker xN,      supervised processes, one
    scoring (PyFlink MiniCluster), generator                 log file each

The workloads, their replicas and their environment come from the same plan the
operator applies on Kubernetes (`qarun_cli.local.components`); only the endpoints
differ (loopback ports instead of Services). The runner loop restarts crashed
processes, applies `qarun scale`, prints progress and detects completion: the
generator has sent everything and every question it sent has a row in PostgreSQL.

Resuming: PostgreSQL's data directory is kept in the run's state directory, and the
generator skips questions already stored, so a re-run asks only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

import psycopg
import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from qarun_cli import local, report
from qarun_cli.errors import CLIError
from qarun_cli.specfile import SpecFile
from qarun_cli.state import LiveRun, RunDir
from qarun_cli.supervisor import Supervisor
from qarun_core.summary import RunSummary, all_results_in
from qarun_devstack.paths import MissingComponentError
from qarun_devstack.process import ServiceError, tail
from qarun_devstack.stack import LocalStack

log = logging.getLogger(__name__)

# Stopping order: sources first, so that what is in flight can drain into the sinks.
STOP_ORDER = ("generator", "llm-worker", "retry", "scoring", "storage-writer", "api", "llm-sim")


@dataclass
class Options:
    llm_base_url: str = ""  # a real endpoint; empty = start the simulator
    sim_latency: float | None = None
    sim_faults: dict[str, float] = field(default_factory=dict)
    sim_limits: dict[str, str] = field(default_factory=dict)  # simulator flag -> value
    serve: bool = False
    timeout: float = 0.0
    fresh: bool = False
    poll_seconds: float = 1.0
    out: TextIO = sys.stdout


def parse_faults(text: str) -> dict[str, float]:
    """ "429=0.3,503=0.1,timeout=0.01" -> {"429": 0.3, ...}, checked against the simulator."""
    faults: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or name not in local.SIM_FAULTS:
            raise CLIError(
                f"--sim-faults: {part!r} is not NAME=RATE with NAME one of "
                f"{', '.join(local.SIM_FAULTS)}",
                code=2,
            )
        try:
            rate = float(value)
        except ValueError:
            raise CLIError(f"--sim-faults: rate of {name} is not a number: {value!r}", 2) from None
        if not 0 <= rate <= 1:
            raise CLIError(f"--sim-faults: rate of {name} must lie in 0..1, got {rate}", 2)
        faults[name] = rate
    return faults


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create the plan's topics in one request; existing ones are left as they are."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()],
        operation_timeout=30,
    )
    for future in futures.values():
        try:
            future.result(timeout=30)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


class Watcher:
    """The run's summary each tick (qarun_core.summary, read as `qarun report` reads it),
    and the recent rate of results for the progress line."""

    def __init__(self, stack: LocalStack, run: str) -> None:
        self.run = run
        self.dsn = stack.postgres.dsn
        self.redis_url = stack.redis.url
        self.history: deque[tuple[float, int]] = deque(maxlen=10)
        self.summary = report.summarize_empty(run)
        self.rate = 0.0  # results per second over the last few ticks

    def poll(self) -> RunSummary:
        with contextlib.suppress(psycopg.Error, redis.RedisError):  # busy: keep the last one
            self.summary = report.summarize(self.dsn, self.run, self.redis_url)
        now, done = time.monotonic(), report.results(self.summary)
        self.history.append((now, done))
        first_time, first_done = self.history[0]
        if now > first_time:
            self.rate = (done - first_done) / (now - first_time)
        return self.summary


def progress_line(summary: RunSummary, total: int, rate: float, elapsed: float) -> str:
    width = 24
    done = report.results(summary)
    filled = int(width * min(1.0, done / total)) if total else 0
    bar = "#" * filled + "." * (width - filled)
    p = summary.progress
    return (
        f"[{bar}] {done}/{total} done  sent {p.sent}  answered {p.answered}  "
        f"validated {p.validated}  exhausted {p.exhausted}  failed {p.failed}  "
        f"retries {summary.retries}  {rate:.0f}/s  {elapsed:.0f}s"
    )


class StopRequestedError(Exception):
    """SIGTERM (or Ctrl-C) asked the runner to stop."""


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise StopRequestedError

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class LocalRunner:
    def __init__(self, specfile: SpecFile, options: Options, run_dir: RunDir | None = None) -> None:
        self.specfile = specfile
        self.spec = specfile.spec
        self.name = specfile.name
        self.options = options
        self.dir = run_dir or RunDir(self.name)
        self.supervisor = Supervisor(self.dir.logs)
        self.stack: LocalStack | None = None
        self.api_url = ""
        self.dashboard_url = ""
        self.on_tick: Callable[[LocalRunner, RunSummary], None] | None = None  # for tests

    def say(self, text: str) -> None:
        print(text, file=self.options.out, flush=True)

    def prepare(self) -> None:
        live = self.dir.live()
        if live is not None:
            raise CLIError(f"run {self.name} is already running here (pid {live.pid})")
        if self.options.fresh and self.dir.exists():
            shutil.rmtree(self.dir.path)
        self.dir.create()
        # Kafka, Redis and Flink checkpoints start afresh on every start: what a resumed
        # run needs to know (what is answered) is in PostgreSQL.
        for transient in ("kafka", "redis"):
            shutil.rmtree(self.dir.stack / transient, ignore_errors=True)
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        for old in self.dir.logs.glob("*.log"):
            old.unlink()

    @property
    def checkpoints(self) -> Path:
        return self.dir.path / "checkpoints"

    def run(self) -> int:
        self.prepare()
        started = time.monotonic()
        self.say(f"qarun: starting run {self.name} (state in {self.dir.path})")
        try:
            with stop_on_sigterm(), self._stack() as stack:
                self.stack = stack
                return self._run(stack, started)
        except (MissingComponentError, ServiceError) as error:
            raise CLIError(str(error)) from None
        except (KeyboardInterrupt, StopRequestedError):
            self.say("\nqarun: interrupted while starting; everything is stopped")
            return 130
        finally:
            self.dir.unpublish()

    @contextlib.contextmanager
    def _stack(self) -> Iterator[LocalStack]:
        """LocalStack, started a second time if Kafka's storage format fails: the random
        cluster id it passes as `-t ID` starts with '-' one time in 64, which the
        formatting tool then reads as an option (reported; devstack is not ours)."""
        stack = LocalStack(workdir=self.dir.stack, with_kube=False)
        try:
            stack.__enter__()
        except ServiceError as error:
            if "formatting the Kafka log directory" not in str(error):
                raise
            shutil.rmtree(self.dir.stack / "kafka", ignore_errors=True)
            stack = LocalStack(workdir=self.dir.stack, with_kube=False)
            stack.__enter__()
        try:
            yield stack
        finally:
            stack.__exit__(None, None, None)

    def _run(self, stack: LocalStack, started: float) -> int:
        self.say(
            f"qarun: infrastructure up in {time.monotonic() - started:.1f} s "
            f"(kafka {stack.kafka.bootstrap}, postgres :{stack.postgres.port}, "
            f"redis :{stack.redis.port})"
        )
        plan = local.LocalPlan.build(
            self.specfile,
            stack,
            llm_base_url=self.options.llm_base_url,
            sim_latency=self.options.sim_latency,
            sim_faults=self.options.sim_faults,
            sim_limits=self.options.sim_limits,
            checkpoints=self.checkpoints,
            replicas=self.dir.wanted_replicas(),
        )
        create_topics(stack.kafka.bootstrap, plan.topics)
        self.api_url = plan.api_url
        watcher: Watcher | None = None
        try:
            for component in plan.components:
                self.supervisor.start(component)
                if component.name in plan.wait_ready:
                    self._wait_ready(component.name, plan.wait_ready[component.name])
            if "api" in self.supervisor.components:  # the API serves the page itself
                self.dashboard_url = f"{plan.api_url}/dashboard?run={self.name}"
            self.dir.publish(
                LiveRun(
                    run=self.name,
                    pid=_pid(),
                    api_url=plan.api_url,
                    kafka=stack.kafka.bootstrap,
                    postgres=stack.postgres.dsn,
                    redis=stack.redis.url,
                    llm_base_url=plan.llm_base_url,
                    total=plan.total,
                    spec_file=str(self.specfile.path),
                    extra={"dashboard": self.dashboard_url},
                )
            )
            self.dir.want_replicas(plan.replicas)
            self.say(f"qarun: {len(plan.components)} components started; logs in {self.dir.logs}")
            if self.dashboard_url:
                self.say(f"qarun: dashboard {self.dashboard_url}")
            watcher = Watcher(stack, self.name)
            outcome = self._loop(watcher, plan, started)
            self._save_dead_letters(stack, plan)
            watcher.poll()
            self._write_status("Succeeded" if outcome == 0 else "Stopped", watcher, plan)
            self.say("")
            self.say(report.render(watcher.summary))
            if self.dashboard_url and outcome == 0 and self.options.serve:
                self.say(f"\ndashboard: {self.dashboard_url}")
                self._serve()
            elif self.dashboard_url:
                self.say(
                    f"\ndashboard: {self.dashboard_url} (up while the run is; add --serve "
                    "to keep it open after the run, e.g. make demo DEMO_ARGS=--serve)"
                )
            return outcome
        finally:
            self.say("qarun: stopping processes")
            self.supervisor.stop(STOP_ORDER)

    def _wait_ready(self, name: str, ready: local.Readiness) -> None:
        replica = self.supervisor.replicas[name][0]
        started = time.monotonic()
        try:
            replica.service.wait_ready(ready.check, ready.timeout, ready.what)
            if (waited := time.monotonic() - started) > 2:  # worth a line: the job's start
                self.say(f"qarun: {name} {ready.what} after {waited:.0f} s")
        except ServiceError as error:
            raise CLIError(str(error)) from None

    def _loop(self, watcher: Watcher, plan: local.LocalPlan, started: float) -> int:
        tty = self.options.out.isatty()
        last_line = 0.0
        deadline = started + self.options.timeout if self.options.timeout else None
        try:
            while True:
                for event in self.supervisor.check():
                    self.say(f"\nqarun: {event}" if tty else f"qarun: {event}")
                    if "exited with code" in event and "code 0" not in event:
                        self._quote_log(event.split()[0])
                wanted = self.dir.wanted_replicas()
                if (
                    wanted is not None
                    and wanted != self.supervisor.components["llm-worker"].replicas
                ):
                    self.say(f"qarun: scaling llm-worker to {wanted}")
                    self.supervisor.scale("llm-worker", wanted)
                summary = watcher.poll()
                done = all_results_in(summary)
                self._write_status("Running", watcher, plan)
                if self.on_tick is not None:
                    self.on_tick(self, summary)
                now = time.monotonic()
                line = progress_line(
                    summary, plan.total or summary.progress.total, watcher.rate, now - started
                )
                if tty:
                    print("\r" + line, end="", file=self.options.out, flush=True)
                elif now - last_line >= 5 or done:
                    self.say(line)
                    last_line = now
                if done:
                    if tty:
                        self.say("")
                    self.say(f"qarun: run {self.name} complete in {now - started:.1f} s")
                    return 0
                if (
                    self.supervisor.exit_codes("generator")
                    and all(
                        code not in (None, 0) for code in self.supervisor.exit_codes("generator")
                    )
                    and self.supervisor.restarts("generator") >= 5
                ):
                    self.say("qarun: the generator keeps failing; see its log")
                    return 1
                if deadline is not None and now > deadline:
                    self.say(f"\nqarun: gave up after {self.options.timeout:.0f} s (--timeout)")
                    return 3
                time.sleep(self.options.poll_seconds)
        except (KeyboardInterrupt, StopRequestedError):
            self.say("\nqarun: interrupted; run the same command again to resume")
            return 130

    def _quote_log(self, replica: str) -> None:
        """The last line of a crashed process's log: usually the reason."""
        log_path = self.dir.logs / f"{replica}.log"
        lines = [line for line in tail(log_path, 5).splitlines() if line.strip()]
        if lines:
            self.say(f"qarun:   {log_path.name}: {lines[-1][:300]}")

    def _write_status(self, phase: str, watcher: Watcher, plan: local.LocalPlan) -> None:
        processes = {
            name: {
                "replicas": self.supervisor.components[name].replicas,
                "alive": self.supervisor.alive(name),
                "restarts": self.supervisor.restarts(name),
                "pids": [self.supervisor.pid(r) for r in replicas],
            }
            for name, replicas in self.supervisor.replicas.items()
        }
        status = {
            "run": self.name,
            "phase": phase,
            "summary": watcher.summary.model_dump(mode="json", by_alias=True),
            "rate": watcher.rate,
            "processes": processes,
            "api_url": plan.api_url,
            "updated": time.time(),
        }
        tmp = self.dir.path / "status.json.tmp"
        tmp.write_text(json.dumps(status, indent=2))
        tmp.replace(self.dir.path / "status.json")

    def _save_dead_letters(self, stack: LocalStack, plan: local.LocalPlan) -> None:
        from qarun_cli.deadletters import read_dead_letters  # noqa: PLC0415 - only at the end

        with contextlib.suppress(Exception):
            letters = read_dead_letters(stack.kafka.bootstrap, plan.topics_of_run.dlq)
            self.dir.dead_letters.write_text("".join(json.dumps(d) + "\n" for d in letters))

    def _serve(self) -> None:
        """Keep the API and the dashboard up after the run, until Ctrl-C or SIGTERM."""
        for name in ("generator", "llm-worker", "retry", "scoring"):
            if name in self.supervisor.replicas:
                self.supervisor.scale(name, 0)
        self.say("qarun: serving the API and dashboard; press Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt, StopRequestedError):
            while True:
                time.sleep(1)


def _pid() -> int:
    return os.getpid()
