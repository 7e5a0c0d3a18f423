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

The loop's pieces live beside it: supervision (what a crash or `qarun scale` means for
the run), progress_view (what is printed), run_status (the polled summary and the
status file).

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

from qarun_cli import local, report
from qarun_cli.errors import CLIError
from qarun_cli.progress_view import ProgressView, progress_line
from qarun_cli.run_status import Watcher, write_status
from qarun_cli.specfile import SpecFile
from qarun_cli.state import LiveRun, RunDir
from qarun_cli.supervision import Supervision
from qarun_cli.supervisor import Supervisor
from qarun_core.kafka_topics import ensure_topics
from qarun_core.summary import RunSummary, all_results_in
from qarun_devstack.paths import MissingComponentError
from qarun_devstack.process import ServiceError
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
        self.supervision = Supervision(self.supervisor, self.dir.logs)
        self.view = ProgressView(options.out)
        self.stack: LocalStack | None = None
        self.api_url = ""
        self.dashboard_url = ""
        self.on_tick: Callable[[LocalRunner, RunSummary], None] | None = None  # for tests

    def say(self, text: str) -> None:
        self.view.say(text)

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
            with stop_on_sigterm(), LocalStack(workdir=self.dir.stack, with_kube=False) as stack:
                self.stack = stack
                return self._run(stack, started)
        except (MissingComponentError, ServiceError) as error:
            raise CLIError(str(error)) from None
        except (KeyboardInterrupt, StopRequestedError):
            self.say("\nqarun: interrupted while starting; everything is stopped")
            return 130
        finally:
            self.dir.unpublish()

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
        ensure_topics(stack.kafka.bootstrap, plan.topics)
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
        deadline = started + self.options.timeout if self.options.timeout else None
        try:
            while True:
                for line in self.supervision.events():
                    self.say(line)
                if scaled := self.supervision.scale_to(self.dir.wanted_replicas()):
                    self.say(scaled)
                summary = watcher.poll()
                done = all_results_in(summary)
                self._write_status("Running", watcher, plan)
                if self.on_tick is not None:
                    self.on_tick(self, summary)
                now = time.monotonic()
                total = plan.total or summary.progress.total
                self.view.progress(
                    progress_line(summary, total, watcher.rate, now - started), now, final=done
                )
                if done:
                    self.say(f"qarun: run {self.name} complete in {now - started:.1f} s")
                    return 0
                if self.supervision.generator_failed():
                    self.say("qarun: the generator keeps failing; see its log")
                    return 1
                if deadline is not None and now > deadline:
                    self.say(f"\nqarun: gave up after {self.options.timeout:.0f} s (--timeout)")
                    return 3
                time.sleep(self.options.poll_seconds)
        except (KeyboardInterrupt, StopRequestedError):
            self.say("\nqarun: interrupted; run the same command again to resume")
            return 130

    def _write_status(self, phase: str, watcher: Watcher, plan: local.LocalPlan) -> None:
        write_status(
            self.dir.path,
            run=self.name,
            phase=phase,
            watcher=watcher,
            supervisor=self.supervisor,
            api_url=plan.api_url,
        )

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
