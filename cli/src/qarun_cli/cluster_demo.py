"""`qarun run -f FILE --k8s`: the same run as `--local`, on Kubernetes, the way a user
runs it: `helm install` of the stack, `kubectl apply` of the QARun, its status as
`kubectl get qr` shows it until the run ends, then the report from the API pod.

Without --kubeconfig it starts this repository's real single-node cluster (the images
come from `make images`) with the stack's values for it (Kafka plain, Flink standalone,
the node's registry) and stops it at the end; with --kubeconfig (e.g. a kind cluster)
it uses that cluster and the chart's defaults, plus any --values files.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qarun_cli.errors import CLIError
from qarun_cli.report import render
from qarun_core.summary import RunSummary
from qarun_devstack import paths

CHART = paths.ROOT / "charts" / "qarun-stack"
NODE_VALUES = CHART / "values-node.yaml"
RELEASE = "qarun"
TERMINAL = ("Succeeded", "Failed")
STALL_SECONDS = 600  # the QARun's status unchanged this long: say what it waits for, stop
POLL_SECONDS = 5


@dataclass
class Cluster:
    kubeconfig: Path
    namespace: str

    def _run(
        self, tool: str, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                [str(paths.go_tool(tool)), *args],
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={"KUBECONFIG": str(self.kubeconfig), "PATH": "/usr/bin:/bin",
                     "HOME": tempfile.gettempdir()},
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as expired:
            raise CLIError(f"{tool} {' '.join(args)} took over {timeout:.0f} s") from expired
        if done.returncode != 0:
            raise CLIError(f"{tool} {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self._run("kubectl", *args, input=input).stdout

    def helm(self, *args: str, timeout: float = 960) -> str:
        return self._run("helm", *args, timeout=timeout).stdout

    def status(self, run: str) -> dict[str, Any]:
        found = json.loads(self.kubectl("get", "qarun", run, "-n", self.namespace, "-o", "json"))
        status: dict[str, Any] = found.get("status", {})
        return status

    def waiting_for(self) -> str:
        """What the namespace waits on: its pods that are not Ready (and why) and its
        claims that are not Bound (with their latest event)."""
        lines = []
        for pod in json.loads(self.kubectl("get", "pods", "-n", self.namespace, "-o", "json"))[
            "items"
        ]:
            why = not_ready(pod)
            if why:
                lines.append(f"  pod {pod['metadata']['name']}: {why}")
        claims = json.loads(self.kubectl("get", "pvc", "-n", self.namespace, "-o", "json"))
        for claim in claims["items"]:
            phase = claim.get("status", {}).get("phase", "Pending")
            if phase != "Bound":
                name = claim["metadata"]["name"]
                events = self.kubectl(
                    "get", "events", "-n", self.namespace, "--sort-by=.lastTimestamp",
                    "--field-selector", f"involvedObject.kind=PersistentVolumeClaim,"
                    f"involvedObject.name={name}", "-o", "jsonpath={.items[-1:].message}",
                )  # fmt: skip
                lines.append(f"  claim {name}: {phase}{': ' + events if events else ''}")
        return "\n".join(lines) or "  every pod is Ready and every claim Bound"

    def summary(self, run: str) -> RunSummary:
        """GET /runs/{run}/summary of the API, from inside its pod."""
        script = (
            "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
            f"'http://127.0.0.1:8080/runs/{run}/summary', timeout=10).read().decode())"
        )
        out = self.kubectl(
            "exec", "-n", self.namespace, "deploy/qarun-api", "--", "python", "-c", script
        )
        return RunSummary.model_validate_json(out)


def not_ready(pod: dict[str, Any]) -> str:
    """Why a pod is not Ready ("" when it is), as `kubectl describe` would say it."""
    status = pod.get("status", {})
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    if conditions.get("Ready", {}).get("status") == "True" or status.get("phase") == "Succeeded":
        return ""
    scheduled = conditions.get("PodScheduled", {})
    if scheduled.get("status") == "False":
        return f"{status.get('phase', 'Pending')}, not scheduled: {scheduled.get('message', '')}"
    for container in status.get("containerStatuses", []):
        state = container.get("state", {})
        waiting = state.get("waiting") or state.get("terminated")
        if waiting:
            return f"{container['name']} {waiting.get('reason', '')}: {waiting.get('message', '')}"
    return f"{status.get('phase', 'Pending')}, not Ready"


def chart_with_dependencies(workdir: Path) -> Path:
    """The stack chart with its Strimzi and Flink-operator dependencies: as `helm
    dependency build` left them, else the offline copies (QARUN_UPSTREAM_CHARTS)."""
    if (CHART / "charts").is_dir():
        return CHART
    chart = workdir / "qarun-stack"
    shutil.copytree(CHART, chart)
    (chart / "charts").mkdir()
    shutil.copytree(CHART.parent / "qarun-operator", chart / "charts" / "qarun-operator")
    for name in ("strimzi-kafka-operator", "flink-kubernetes-operator"):
        upstream = paths.require(
            paths.upstream_charts() / name, f"the {name} chart", "helm dependency build"
        )
        shutil.copytree(upstream, chart / "charts" / name)
    return chart


@contextmanager
def repository_node(workdir: Path) -> Iterator[Path]:
    """This repository's real node, for as long as the demo runs."""
    from qarun_devstack.cluster import RealCluster  # noqa: PLC0415 - only this path needs it

    print("starting the real node (kubelet, containerd, CoreDNS, registry) ...", flush=True)
    started = time.monotonic()
    # SIGTERM (a CI job cancelled) stops the node as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with RealCluster(workdir / "node") as node:
            print(f"  node ready in {time.monotonic() - started:.0f} s", flush=True)
            try:
                yield node.kubeconfig
            finally:
                # A second Ctrl-C must not cut short the node's clean-up.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def progress_line(status: dict[str, Any], elapsed: float) -> str:
    p = status.get("progress", {})
    score = status.get("score", {}).get("mean")
    return (
        f"[{elapsed:6.0f} s] {status.get('phase', 'Pending'):<12}"
        f" workers {status.get('replicas', 0)}"
        f"  sent {p.get('sent', 0)}/{p.get('total', 0)}  answered {p.get('answered', 0)}"
        f"  validated {p.get('validated', 0)}  exhausted {p.get('exhausted', 0)}"
        f"  failed {p.get('failed', 0)}  score {score if score is not None else '-'}"
    )


def run_on_cluster(
    spec_file: Path,
    *,
    kubeconfig: Path | None,
    values: Sequence[Path],
    namespace: str,
    total: int | None,
    timeout: float,
) -> int:
    manifest = yaml.safe_load(spec_file.read_text())
    name = manifest["metadata"]["name"]
    if total is not None:
        manifest["spec"].setdefault("traffic", {})["total"] = total
        manifest["spec"].setdefault("dataset", {})["limit"] = total
    deadline = time.monotonic() + timeout if timeout else None
    with tempfile.TemporaryDirectory(prefix="qarun-k8s-demo-") as tmp:
        workdir = Path(tmp)
        chart = chart_with_dependencies(workdir)
        with _cluster(workdir, kubeconfig) as config:
            cluster = Cluster(config, namespace)
            extra = [NODE_VALUES] if kubeconfig is None else []
            started = time.monotonic()
            wait = max(1, min(900, deadline - started)) if deadline else 900
            print(f"helm install {RELEASE} charts/qarun-stack -n {namespace} ...", flush=True)
            try:
                cluster.helm(
                    "upgrade", "--install", RELEASE, str(chart), "-n", namespace,
                    "--create-namespace", "--wait", "--timeout", f"{wait:.0f}s",
                    *(arg for f in [*extra, *values] for arg in ("-f", str(f))),
                    timeout=wait + 60,
                )  # fmt: skip
            except CLIError as error:
                raise CLIError(f"{error}\nwaiting for:\n{cluster.waiting_for()}") from error
            print(f"  stack ready in {time.monotonic() - started:.0f} s", flush=True)
            applied = time.monotonic()
            print(f"kubectl apply -n {namespace} -f {spec_file}", flush=True)
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
            status = follow(cluster, name, applied, deadline)
            print(f"{name} {status['phase']} in {time.monotonic() - applied:.0f} s", flush=True)
            print(render(cluster.summary(name)), flush=True)
            print(
                f"\nThe stack stays installed: kubectl delete qarun {name} -n {namespace}; "
                f"helm uninstall {RELEASE} -n {namespace}"
                if kubeconfig is not None
                else "\nStopping the real node.",
                flush=True,
            )
    return 0 if status.get("phase") == "Succeeded" else 1


def follow(cluster: Cluster, name: str, applied: float, deadline: float | None) -> dict[str, Any]:
    """Print the QARun's status as it changes until it ends; raise when it has not moved
    for STALL_SECONDS or the deadline passed, saying what the namespace waits for."""
    status: dict[str, Any] = {}
    last, moved = "", time.monotonic()
    while status.get("phase") not in TERMINAL:
        now = time.monotonic()
        if deadline is not None and now > deadline:
            raise CLIError(
                f"the run did not end within the --timeout; waiting for:\n{cluster.waiting_for()}"
            )
        if now - moved > STALL_SECONDS:
            raise CLIError(
                f"{name}'s status has not changed for {STALL_SECONDS} s; waiting for:\n"
                f"{cluster.waiting_for()}"
            )
        time.sleep(POLL_SECONDS)
        status = cluster.status(name)
        line = progress_line(status, time.monotonic() - applied)
        if line.split("]", 1)[1] != last:
            print(line, flush=True)
            last, moved = line.split("]", 1)[1], time.monotonic()
    return status


@contextmanager
def _cluster(workdir: Path, kubeconfig: Path | None) -> Iterator[Path]:
    if kubeconfig is not None:
        yield kubeconfig
        return
    with repository_node(workdir) as config:
        yield config
