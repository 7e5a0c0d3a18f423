"""The run's workloads as local processes: what the operator makes Deployments, a Job and
a FlinkSessionJob of, with loopback endpoints in place of cluster Services.

Every role is started as `python -m <module>` of this virtualenv, configured only by
the environment and arguments the plan generates from the spec, exactly as their
containers are on Kubernetes; the local stack's endpoints are the plan's `Endpoints`.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qarun_cli.cli_settings import CLISettings
from qarun_cli.specfile import SpecFile
from qarun_cli.supervisor import Component, Restart
from qarun_core.env_contract import env_name
from qarun_core.plan import (
    GENERATOR,
    LLM_WORKER,
    RETRY,
    SCORING,
    STORAGE_WRITER,
    ComponentPlan,
    Endpoints,
    SecretEnv,
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


def with_secrets(env: dict[str, str], secrets: tuple[SecretEnv, ...], key: str) -> dict[str, str]:
    """A component's environment with its Secrets' values: on Kubernetes a Secret holds
    the LLM key; here it is the user's own (the PostgreSQL DSN is the plan's input).
    Never written anywhere by the runner."""
    return env | ({secret.env: key for secret in secrets} if key else {})


def local_env(component: ComponentPlan, key: str) -> dict[str, str]:
    return with_secrets(dict(component.env), component.secret_env, key)


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
            env_name("instance"): f"{run}-{role}-{index}",
            env_name("metrics", "host"): "127.0.0.1",
            env_name("metrics", "port"): str(free_port()),
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
        user = CLISettings()
        key = user.llm_api_key()
        base_url = llm_base_url or user.llm.base_url
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
        endpoints = Endpoints(
            kafka_bootstrap=stack.kafka.bootstrap,
            redis_url=stack.redis.url,
            llm_base_url=base_url,
            postgres_dsn=stack.postgres.dsn,
        )
        run_plan = plan(run, specfile.namespace, spec, endpoints)
        api_port = free_port()
        if available("qarun_workers.api"):
            # The API and the simulator belong to the stack (charts/qarun-stack), not to
            # the run's plan; locally the runner starts them too.
            storage = run_plan.component(STORAGE_WRITER)
            api_env = local_env(storage, key) | {env_name("api", "port"): str(api_port)}
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
                    local_env(planned, key),
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
            env_name("flink", "checkpoint_dir"): checkpoints.resolve().as_uri(),
            env_name("flink", "ready_file"): str(ready_file),
            env_name("flink", "metrics_window_seconds"): "2",
            **(stack.flink.env_vars if stack.flink is not None else {}),
        }
        flink_env = with_secrets(flink_env, job.secret_env, key)

        def restore(_index: int) -> dict[str, str]:
            latest = latest_checkpoint(checkpoints)
            restore_from = env_name("flink", "restore_from")
            return {restore_from: latest.resolve().as_uri()} if latest else {}

        components.append(
            Component(
                SCORING,
                module_argv(job.module, *job.args),
                flink_env,
                env_for=restore,
            )
        )
        generator = run_plan.component(GENERATOR)
        components.append(
            Component(
                GENERATOR,
                venv_command(*generator.command),
                local_env(generator, key),
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
