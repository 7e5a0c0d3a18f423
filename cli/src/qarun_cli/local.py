"""The run's workloads as local processes: what the operator makes Deployments, a Job and
a FlinkSessionJob of, with loopback endpoints in place of cluster Services.

Every role is started as `python -m <module>` of this virtualenv, configured only by
environment variables (the `QARUN_*` names the workers' settings and the Flink job's
parameters read), exactly as their containers are on Kubernetes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qarun_cli.specfile import SpecFile
from qarun_cli.supervisor import Component, Restart
from qarun_core.plan import (
    GENERATOR,
    LLM_WORKER,
    RETRY,
    SCORING,
    STORAGE_WRITER,
    ComponentPlan,
    FlinkPlan,
    plan,
    retry_tiers,
)
from qarun_core.ports import free_port
from qarun_core.topics import RunTopics
from qarun_devstack.process import port_open
from qarun_devstack.stack import LocalStack

SIM_FAULTS = ("429", "500", "503", "400", "timeout", "malformed")
SIM_HOSTS = ("qarun-llm-sim",)  # the chart's simulator Service: replaced by a local one


def module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def venv_command(command: str, *args: str) -> list[str]:
    """A planned command (a console script such as `qarun-llm-worker`) of this virtualenv."""
    return [str(Path(sys.executable).parent / command), *args]


def available(module: str) -> bool:
    """Whether a role's module is installed (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def local_env(
    component: ComponentPlan, stack: LocalStack, llm_base_url: str, cluster_llm_url: str
) -> dict[str, str]:
    """A component's planned environment with loopback endpoints and local secrets."""
    env = dict(component.env)
    env["QARUN_KAFKA__BOOTSTRAP"] = stack.kafka.bootstrap
    if env.get("QARUN_LLM__BASE_URL") == cluster_llm_url:
        env["QARUN_LLM__BASE_URL"] = llm_base_url
    if "QARUN_STORAGE__REDIS_URL" in env:
        env["QARUN_STORAGE__REDIS_URL"] = stack.redis.url
    for secret in component.secret_env:
        # A Secret's value on Kubernetes; here the DSN of the local server, or the key
        # from the user's own environment. Never written anywhere by the runner.
        if secret.env == "QARUN_STORAGE__POSTGRES_DSN":
            env[secret.env] = stack.postgres.dsn
        elif value := os.environ.get(secret.env) or os.environ.get("OPENAI_API_KEY"):
            env[secret.env] = value
    if component.role in (GENERATOR, STORAGE_WRITER):  # Redis: generator progress, cache
        env.setdefault("QARUN_STORAGE__POSTGRES_DSN", stack.postgres.dsn)
        env.setdefault("QARUN_STORAGE__REDIS_URL", stack.redis.url)
    return env


def flink_args(
    flink: FlinkPlan, stack: LocalStack, llm_base_url: str, cluster_llm_url: str
) -> list[str]:
    """The planned job arguments with the local broker (and the local judge endpoint)."""
    args = list(flink.args)
    for i, arg in enumerate(args[:-1]):
        if arg == "--bootstrap":
            args[i + 1] = stack.kafka.bootstrap
        elif arg == "--llm-base-url" and args[i + 1] == cluster_llm_url:
            args[i + 1] = llm_base_url
    return args


@dataclass(frozen=True)
class Readiness:
    """What the runner waits for after starting a component, before the next one."""

    check: Callable[[], bool]
    what: str
    timeout: float = 60.0


def listening(port: int) -> Readiness:
    return Readiness(lambda: port_open(port), f"listening on {port}")


def instance_env(run: str, role: str) -> Callable[[int], dict[str, str]]:
    """Each replica's own instance name (the pod name on Kubernetes) and, since replicas
    share one host here, its own loopback port for the LLM worker's metrics."""

    def env(index: int) -> dict[str, str]:
        return {
            "QARUN_INSTANCE": f"{run}-{role}-{index}",
            "QARUN_METRICS__HOST": "127.0.0.1",
            "QARUN_METRICS__PORT": str(free_port()),
        }

    return env


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete checkpoint (`<job>/chk-N` with its _metadata) under the dir."""
    found = [
        meta.parent
        for meta in checkpoints.glob("*/chk-*/_metadata")
        if meta.parent.name.removeprefix("chk-").isdigit()
    ]
    if not found:
        return None
    return max(found, key=lambda p: (p.stat().st_mtime, int(p.name.removeprefix("chk-"))))


@dataclass
class LocalPlan:
    run: str
    topics: dict[str, int]  # name -> partitions
    topics_of_run: RunTopics
    components: list[Component]
    wait_ready: dict[str, Readiness]  # component -> what to wait for before the next
    api_url: str
    llm_base_url: str
    total: int
    replicas: int

    @classmethod
    def build(
        cls,
        specfile: SpecFile,
        stack: LocalStack,
        *,
        llm_base_url: str = "",
        sim_latency: float | None = None,
        sim_faults: dict[str, float] | None = None,
        sim_limits: dict[str, str] | None = None,
        checkpoints: Path,
        replicas: int | None = None,
    ) -> LocalPlan:
        spec, run = specfile.spec, specfile.name
        components: list[Component] = []
        wait_ready: dict[str, Readiness] = {}
        base_url = llm_base_url or os.environ.get("QARUN_LLM_BASE_URL", "")
        if not base_url and any(host in spec.llm.base_url for host in SIM_HOSTS):
            port = free_port()
            base_url = f"http://127.0.0.1:{port}/v1"
            args = ["--port", str(port), "--dataset", spec.dataset.source,
                    "--format", spec.dataset.format.value]  # fmt: skip
            if sim_latency is not None:
                args += ["--latency", str(sim_latency)]
            for name, rate in (sim_faults or {}).items():
                args += [f"--rate-{name}", str(rate)]
            for flag, value in (sim_limits or {}).items():
                args += [flag, value]
            components.append(Component("llm-sim", module_argv("qarun_simulator", *args)))
            wait_ready["llm-sim"] = listening(port)
        elif not base_url:
            base_url = spec.llm.base_url  # a real endpoint named in the spec
        run_plan = plan(run, specfile.namespace, spec)
        api_port = free_port()
        if available("qarun_workers.api"):
            # The API and the simulator belong to the stack (charts/qarun-stack), not to
            # the run's plan; locally the runner starts them too.
            storage = run_plan.component(STORAGE_WRITER)
            api_env = local_env(storage, stack, base_url, spec.llm.base_url)
            api_env["QARUN_API__PORT"] = str(api_port)
            components.append(Component("api", venv_command("qarun-api"), api_env))
            wait_ready["api"] = listening(api_port)
        order = (STORAGE_WRITER, RETRY, LLM_WORKER)
        for role in order:
            planned = run_plan.component(role)
            workers = planned.replicas if role != LLM_WORKER or replicas is None else replicas
            components.append(
                Component(
                    role,
                    venv_command(*planned.command),
                    local_env(planned, stack, base_url, spec.llm.base_url),
                    replicas=workers,
                    env_for=instance_env(run, role),
                )
            )
        job = run_plan.flink
        # The generator starts once the job runs: questions sent before only queue.
        ready_file = checkpoints.parent / "scoring.ready"
        ready_file.unlink(missing_ok=True)  # an earlier run's would not make us wait
        wait_ready[SCORING] = Readiness(ready_file.exists, "running its job", timeout=300)
        flink_env = {
            "QARUN_FLINK_CHECKPOINT_DIR": checkpoints.resolve().as_uri(),
            "QARUN_FLINK_READY_FILE": str(ready_file),
            "QARUN_METRICS_WINDOW_SECONDS": "2",
            **(stack.flink.env_vars if stack.flink is not None else {}),
        }
        if job.secret_env and (key := os.environ.get("QARUN_LLM_API_KEY")):
            flink_env["QARUN_LLM_API_KEY"] = key

        def restore(_index: int) -> dict[str, str]:
            latest = latest_checkpoint(checkpoints)
            return {"QARUN_FLINK_RESTORE_FROM": latest.resolve().as_uri()} if latest else {}

        components.append(
            Component(
                SCORING,
                module_argv(job.module, *flink_args(job, stack, base_url, spec.llm.base_url)),
                flink_env,
                env_for=restore,
            )
        )
        generator = run_plan.component(GENERATOR)
        components.append(
            Component(
                GENERATOR,
                venv_command(*generator.command),
                local_env(generator, stack, base_url, spec.llm.base_url),
                restart=Restart.ON_FAILURE,
            )
        )
        topics = RunTopics(run, retry_tiers(spec))
        total = spec.traffic.total or spec.dataset.limit
        return cls(
            run=run,
            topics={t.name: t.partitions for t in run_plan.topics},
            topics_of_run=topics,
            components=components,
            wait_ready=wait_ready,
            api_url=f"http://127.0.0.1:{api_port}",
            llm_base_url=base_url,
            total=total,
            replicas=run_plan.component(LLM_WORKER).replicas if replicas is None else replicas,
        )
