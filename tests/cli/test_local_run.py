"""`qarun run --local` end to end on the real components: Kafka, a Flink MiniCluster,
PostgreSQL, Redis, the workers and the LLM simulator as supervised processes.

One run is interrupted with Ctrl-C (SIGINT) part-way, scaled while it runs, and then
run again: the second run resumes (asks only what is missing) and completes; the
other commands are checked against the finished run's database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qarun_cli.state import pid_alive

QARUN = [sys.executable, "-m", "qarun_cli.main"]
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "cli"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOTAL = 400
SPEC = f"""\
apiVersion: qarun.io/v1alpha1
kind: QARun
metadata:
  name: e2e
spec:
  traffic: {{ratePerSecond: 5, total: {TOTAL}}}  # slow: Ctrl-C comes mid-run
  llm: {{model: qarun-sim}}
  workers: {{replicas: 2}}
  kafka: {{partitions: 3}}
  flink: {{parallelism: 1, checkpointIntervalSeconds: 5}}
"""


def until(
    check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise AssertionError(
                f"qarun run exited with {proc.returncode} before {what}:\n"
                + runner_output(proc)[-3000:]
            )
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}:\n" + runner_output(proc)[-3000:]
        )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def env() -> Iterator[dict[str, str]]:
    # Not below pytest's base temp dir: concurrent pytest sessions reset that to mode
    # 0700, and PostgreSQL runs as its own user (as root) and must reach its data dir.
    state = Path(tempfile.mkdtemp(prefix="qarun-cli-test-"))
    yield {**os.environ, "QARUN_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "e2e.yaml"
    path.write_text(SPEC)
    return path


def qarun(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*QARUN, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def status(env: dict[str, str]) -> dict[str, Any]:
    path = Path(env["QARUN_STATE_DIR"]) / "runs" / "e2e" / "status.json"
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def results(data: dict[str, Any]) -> int:
    """Questions with a result in a RunSummary's JSON (or in status.json's summary)."""
    progress = data.get("summary", data).get("progress", {})
    return sum(int(progress.get(name, 0)) for name in ("validated", "exhausted", "failed"))


RUNNER_OUT: dict[int, Path] = {}  # pid of a `qarun run` -> where its output goes


def runner_output(proc: subprocess.Popen[str]) -> str:
    return RUNNER_OUT[proc.pid].read_text()


def start(env: dict[str, str], spec_file: Path, *extra: str) -> subprocess.Popen[str]:
    out = Path(env["QARUN_STATE_DIR"]) / f"runner-{len(RUNNER_OUT)}.out"
    with out.open("w") as log:
        proc = subprocess.Popen(
            [*QARUN, "run", "-f", str(spec_file), "--local", "--sim-latency", "0.2", *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    RUNNER_OUT[proc.pid] = out
    return proc


@pytest.fixture(scope="module")
def interrupted(env: dict[str, str], spec_file: Path) -> dict[str, Any]:
    """Run 1: started, scaled to 3 workers, then stopped with Ctrl-C part-way."""
    proc = start(env, spec_file)
    try:
        until(lambda: results(status(env)) >= 30, 300, "results", proc)
        shown = qarun(env, "status", "e2e")
        scaled = qarun(env, "scale", "e2e", "3")
        until(
            lambda: status(env)["processes"]["llm-worker"]["alive"] == 3, 60, "a third worker", proc
        )
        seen = status(env)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return {"code": code, "status": shown, "scaled": scaled, "seen": seen}


def test_ctrl_c_stops_every_process(interrupted: dict[str, Any], env: dict[str, str]) -> None:
    assert interrupted["code"] == 130
    assert "run e2e: Running" in interrupted["status"].stdout
    assert "llm-worker" in interrupted["status"].stdout
    assert "set to 3 (was 2)" in interrupted["scaled"].stdout
    pids = [p for proc in interrupted["seen"]["processes"].values() for p in proc["pids"]]
    assert len(pids) >= 8  # sim, storage writer, retry, 3 workers, scoring, generator
    assert not [pid for pid in pids if pid and pid_alive(pid)]
    assert not (Path(env["QARUN_STATE_DIR"]) / "runs" / "e2e" / "run.json").exists()
    assert 0 < results(interrupted["seen"]) < TOTAL


@pytest.fixture(scope="module")
def resumed(interrupted: dict[str, Any], env: dict[str, str], spec_file: Path) -> dict[str, Any]:
    """Run 2: the same file again, faster, with 5 % permanent (400) errors."""
    before = qarun(env, "report", "e2e", "--json")
    proc = start(env, spec_file, "--rate", "6", "--sim-faults", "400=0.05", "--timeout", "400")
    try:
        page = dashboard_during_run(env, proc, results(json.loads(before.stdout)))
        code = proc.wait(timeout=480)
    finally:
        if proc.poll() is None:
            proc.kill()
    return {
        "code": code,
        "before": json.loads(before.stdout),
        "status": status(env),
        "page": page,
    }


COUNTERS = ("results", "validated", "exhausted", "failed")


def api_counts(api_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{api_url}/runs/e2e/summary", timeout=10) as answer:  # noqa: S310
        summary = json.loads(answer.read())
    counts = {name: int(summary["progress"][name]) for name in COUNTERS[1:]}
    return {"results": sum(counts.values()), **counts}


def chromium(*args: str) -> str:
    profile = tempfile.mkdtemp(prefix="qarun-chromium-")
    try:
        done = subprocess.run(
            ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def dashboard_during_run(
    env: dict[str, str], proc: subprocess.Popen[str], done_before: int
) -> dict[str, Any]:
    """Load the dashboard in headless Chromium while results are still coming in."""
    record = Path(env["QARUN_STATE_DIR"]) / "runs" / "e2e" / "run.json"
    until(record.exists, 300, "the live run's record", proc)
    live = json.loads(record.read_text())
    until(lambda: results(status(env)) > done_before, 300, "new results", proc)
    url = live["extra"]["dashboard"]
    before = api_counts(live["api_url"])
    dom = chromium("--virtual-time-budget=6000", "--dump-dom", url)
    after = api_counts(live["api_url"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium(
        "--virtual-time-budget=6000",
        "--window-size=1280,1000",
        f"--screenshot={ARTIFACTS / 'dashboard.png'}",
        url,
    )
    shown = {}
    for name in COUNTERS:
        match = re.search(rf'id="{name}">(\d+)<', dom)
        assert match, f"the dashboard shows no {name} counter:\n{dom[:3000]}"
        shown[name] = int(match[1])
    return {
        "url": url,
        "api_url": live["api_url"],
        "before": before,
        "after": after,
        "shown": shown,
        "dom": dom,
        "done": results(status(env)),
    }


def test_rerun_resumes_and_completes(resumed: dict[str, Any], env: dict[str, str]) -> None:
    assert resumed["code"] == 0
    done_before = results(resumed["before"])
    assert done_before > 0
    progress = resumed["status"]["summary"]["progress"]
    assert resumed["status"]["phase"] == "Succeeded"
    assert results(resumed["status"]) == TOTAL
    # Only the questions without a stored result were sent again.
    assert progress["sent"] <= TOTAL - done_before


def test_dashboard_matches_api_during_the_run(resumed: dict[str, Any]) -> None:
    page = resumed["page"]
    # The API serves the page: same origin as the JSON it reads, no server of the CLI's.
    assert page["url"] == f"{page['api_url']}/dashboard?run=e2e"
    assert 'data-loaded="true"' in page["dom"]
    # The run was live: the page's count lies between two API reads around the load
    # (results are only ever added), and its parts add up to it.
    assert page["before"]["results"] <= page["shown"]["results"] <= page["after"]["results"]
    shown = page["shown"]
    assert shown["validated"] + shown["exhausted"] + shown["failed"] == shown["results"] > 0
    assert page["before"]["results"] < TOTAL  # it was loaded during the run
    assert 'id="attempts-legend"' in page["dom"] and "data-attempts" in page["dom"]
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_report_of_the_stopped_run(resumed: dict[str, Any], env: dict[str, str]) -> None:
    done = qarun(env, "report", "e2e", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    progress = summary["progress"]
    assert results(summary) == TOTAL
    assert progress["failed"] > 0  # the permanent errors of run 2
    assert 0.5 < summary["score"]["mean"] < 1.0
    assert sum(summary["attempts"].values()) == TOTAL - progress["failed"]
    assert set(summary["latencyMs"]["llm"]) == {"p50", "p95", "p99"}
    assert summary["latencyMs"]["llm"]["p50"] >= 200  # the simulator's latency
    table = qarun(env, "report", "e2e")
    assert "score mean / sd" in table.stdout
    assert f"questions with a result                {TOTAL}" in table.stdout


def test_dead_letters_and_replay(resumed: dict[str, Any], env: dict[str, str]) -> None:
    failed = json.loads(qarun(env, "report", "e2e", "--json").stdout)["progress"]["failed"]
    listed = qarun(env, "dlq", "e2e")
    assert listed.returncode == 0, listed.stderr
    assert "permanent_error" in listed.stdout
    replay = qarun(env, "replay", "e2e")
    assert replay.returncode == 0, replay.stderr
    assert f"{failed} failed questions will be asked again" in replay.stdout
    after = json.loads(qarun(env, "report", "e2e", "--json").stdout)
    assert results(after) == TOTAL - failed
    assert after["progress"]["failed"] == 0
