"""One planning function: a QARun (name, namespace, spec) -> the workloads it needs.

The plan is neutral: topics with partitions, components with replicas, command,
environment and Secret-backed environment, and the Flink job's parameters. The operator
realizes it as Kubernetes objects (KafkaTopics or topics through the Kafka Admin API,
Deployments, a Job, and a FlinkDeployment + FlinkSessionJob or a standalone session
cluster it submits to); a local runner realizes the same plan as local processes.
Nothing here talks to a cluster, so the plan is tested as plain data.

Each process is configured by environment variables generated from the spec's own
models (qarun_core.env_contract): a component gets the sections of the spec its role
reads (`ROLE_SECTIONS`), Secrets only where a role needs them (`ROLE_SECRETS`), and the
Flink job gets `FLINK_SECTIONS` as flags (`--scoring.threshold 0.75`). Where the
services are (Kafka, Redis, the LLM, PostgreSQL) is an input, `Endpoints`: the spec's
values on Kubernetes, loopback ones for a local run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from qarun_core.env_contract import (
    FLINK_SECTIONS,
    ROLE_SECTIONS,
    env_name,
    env_value,
    model_args,
    secret_refs,
    sections_env,
)
from qarun_core.spec import (
    FlinkMode,
    KafkaProvider,
    QARunSpec,
    Resources,
    ScoringMethod,
)
from qarun_core.topics import DEFAULT_TIERS, RetryTier, RunTopics, format_delay, tiers_from

PART_OF = "qarun"
MANAGER = "qarun-operator"
LABEL_RUN = "qarun.io/run"
LABEL_COMPONENT = "qarun.io/component"
LLM_WORKER = "llm-worker"
RETRY = "retry"
STORAGE_WRITER = "storage-writer"
GENERATOR = "generator"
SCORING = "scoring"
FLINK_SESSION = "flink"
FLINK_JOB_MODULE = "qarun_flink.job"
KAFKA_PORT = 9092
# The roles whose processes receive a section's Secrets (the LLM key, the DSN).
ROLE_SECRETS: dict[str, tuple[str, ...]] = {
    LLM_WORKER: ("llm",),
    STORAGE_WRITER: ("storage",),
    GENERATOR: ("storage",),
}


@dataclass(frozen=True)
class Endpoints:
    """Where a realization's services are; empty = what the spec names."""

    kafka_bootstrap: str = ""
    redis_url: str = ""
    llm_base_url: str = ""
    postgres_dsn: str = ""  # a value where no Secret holds it (local runs)


class WorkloadKind(StrEnum):
    SERVICE = "service"  # long-running, scaled by replicas (a Deployment)
    BATCH = "batch"  # runs to completion once (a Job)


@dataclass(frozen=True)
class SecretEnv:
    """An environment variable whose value comes from a Secret key."""

    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class TopicPlan:
    name: str
    stream: str
    partitions: int
    replicas: int
    config: Mapping[str, str]


@dataclass(frozen=True)
class ComponentPlan:
    role: str
    name: str
    kind: WorkloadKind
    command: tuple[str, ...]
    replicas: int
    env: Mapping[str, str]
    secret_env: tuple[SecretEnv, ...] = ()
    resources: Resources | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FlinkPlan:
    mode: FlinkMode  # the Flink operator's resources, or a standalone session cluster
    session: str  # the session cluster to submit to
    managed: bool  # True: this run owns the session cluster
    job: str  # name of the FlinkSessionJob
    module: str  # the Python module of the job
    args: tuple[str, ...]
    parallelism: int
    task_managers: int
    secret_env: tuple[SecretEnv, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunPlan:
    run: str
    namespace: str
    labels: Mapping[str, str]  # on every child
    bootstrap: str
    kafka_cluster: str
    kafka_provider: KafkaProvider  # strimzi: KafkaTopics; else the Admin API
    topics: tuple[TopicPlan, ...]
    components: tuple[ComponentPlan, ...]
    flink: FlinkPlan
    selector: str  # label selector of the LLM worker pods (for /scale)

    def component(self, role: str) -> ComponentPlan:
        for component in self.components:
            if component.role == role:
                return component
        raise KeyError(role)


def labels(run: str, component: str | None = None) -> dict[str, str]:
    result = {
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGER,
        LABEL_RUN: run,
    }
    if component:
        result[LABEL_COMPONENT] = component
    return result


def selector(run: str, component: str) -> str:
    return f"{LABEL_RUN}={run},{LABEL_COMPONENT}={component}"


def retry_tiers(spec: QARunSpec) -> tuple[RetryTier, ...]:
    """The default tiers between the overload base and max delays, plus those two and the
    quota delay: every delay the policy can ask for has a tier at least as long."""
    overload = spec.retry.overload
    within = [
        t.delay_seconds
        for t in DEFAULT_TIERS
        if overload.base_delay_seconds <= t.delay_seconds <= overload.max_delay_seconds
    ]
    return tiers_from(
        [
            *within,
            overload.base_delay_seconds,
            overload.max_delay_seconds,
            spec.retry.quota.delay_seconds,
        ]
    )


def bootstrap(spec: QARunSpec) -> str:
    return spec.kafka.bootstrap_servers or f"{spec.kafka.cluster}-kafka-bootstrap:{KAFKA_PORT}"


def with_installation_defaults(
    spec: QARunSpec,
    *,
    flink_mode: FlinkMode,
    kafka_provider: KafkaProvider,
    kafka_bootstrap: str = "",
) -> QARunSpec:
    """The spec with what it leaves to the installation filled in: the Flink mode, the
    Kafka provider and (for a Kafka the stack does not run) the bootstrap servers."""
    provider = spec.kafka.provider or kafka_provider
    servers = spec.kafka.bootstrap_servers
    if not servers and provider is KafkaProvider.EXTERNAL:
        servers = kafka_bootstrap  # Strimzi's and the stack's brokers have their Service
    kafka = spec.kafka.model_copy(update={"provider": provider, "bootstrap_servers": servers})
    flink = spec.flink.model_copy(update={"mode": spec.flink.mode or flink_mode})
    return spec.model_copy(update={"kafka": kafka, "flink": flink})


def with_endpoints(spec: QARunSpec, endpoints: Endpoints) -> QARunSpec:
    """The spec as its processes see it: the realization's endpoints, the Kafka
    bootstrap resolved, and the judge's empty fields filled from the llm section."""
    llm = spec.llm.model_copy(update={"base_url": endpoints.llm_base_url or spec.llm.base_url})
    judge = spec.scoring.judge.model_copy(
        update={
            "base_url": spec.scoring.judge.base_url or llm.base_url,
            "model": spec.scoring.judge.model or llm.model,
        }
    )
    kafka = spec.kafka.model_copy(
        update={"bootstrap_servers": endpoints.kafka_bootstrap or bootstrap(spec)}
    )
    storage = spec.storage.model_copy(
        update={"redis_url": endpoints.redis_url or spec.storage.redis_url}
    )
    return spec.model_copy(
        update={
            "llm": llm,
            "kafka": kafka,
            "storage": storage,
            "scoring": spec.scoring.model_copy(update={"judge": judge}),
        }
    )


def _role_env(run: str, role: str, spec: QARunSpec, tiers: tuple[RetryTier, ...]) -> dict[str, str]:
    return {
        env_name("run"): run,
        env_name("kafka", "create_topics"): env_value(False),  # the plan's topics
        env_name("retry", "tiers"): ",".join(format_delay(t.delay_seconds) for t in tiers),
        **sections_env(spec, ROLE_SECTIONS[role]),
    }


def _role_secrets(role: str, spec: QARunSpec, endpoints: Endpoints) -> dict[str, SecretEnv | str]:
    """A role's secret variables: a Secret reference, or a value the realization has."""
    refs: dict[str, SecretEnv | str] = {}
    for section in ROLE_SECRETS.get(role, ()):
        for env, ref in secret_refs(getattr(spec, section), section).items():
            refs[env] = SecretEnv(env, ref.name, ref.key)
    postgres = env_name("storage", "postgres_dsn")
    if postgres in refs and endpoints.postgres_dsn:
        refs[postgres] = endpoints.postgres_dsn
    return refs


def _topic_config(spec: QARunSpec) -> dict[str, str]:
    return {
        "retention.ms": str(spec.kafka.retention_hours * 3600 * 1000),
        "min.insync.replicas": str(spec.kafka.min_in_sync_replicas),
    }


def plan(run: str, namespace: str, spec: QARunSpec, endpoints: Endpoints | None = None) -> RunPlan:
    """The desired workloads of one run. Pure: the same input gives the same plan."""
    endpoints = endpoints or Endpoints()
    spec = with_endpoints(spec, endpoints)
    tiers = retry_tiers(spec)
    topics = RunTopics(run, tiers)
    config = _topic_config(spec)
    topic_plans = tuple(
        TopicPlan(
            name=name,
            stream=name.split(".", 2)[2],
            partitions=spec.kafka.partitions,
            replicas=spec.kafka.replicas,
            config=config,
        )
        for name in topics.all()
    )

    def component(
        role: str, kind: WorkloadKind, replicas: int, *, resources: Resources | None = None
    ) -> ComponentPlan:
        secrets = _role_secrets(role, spec, endpoints)
        values = {env: v for env, v in secrets.items() if isinstance(v, str)}
        return ComponentPlan(
            role=role,
            name=f"{run}-{role}",
            kind=kind,
            command=(f"qarun-{role}",),
            replicas=replicas,
            env={**_role_env(run, role, spec, tiers), **values},
            secret_env=tuple(v for v in secrets.values() if isinstance(v, SecretEnv)),
            resources=resources,
            labels=labels(run, role),
        )

    components = (
        component(
            LLM_WORKER,
            WorkloadKind.SERVICE,
            spec.workers.replicas,
            resources=spec.workers.resources,
        ),
        component(RETRY, WorkloadKind.SERVICE, 1),
        component(STORAGE_WRITER, WorkloadKind.SERVICE, 1),
        component(GENERATOR, WorkloadKind.BATCH, 1),
    )
    return RunPlan(
        run=run,
        namespace=namespace,
        labels=labels(run),
        bootstrap=spec.kafka.bootstrap_servers,
        kafka_cluster=spec.kafka.cluster,
        kafka_provider=spec.kafka.provider or KafkaProvider.STRIMZI,
        topics=topic_plans,
        components=components,
        flink=_flink_plan(run, spec),
        selector=selector(run, LLM_WORKER),
    )


def _flink_plan(run: str, spec: QARunSpec) -> FlinkPlan:
    flink = spec.flink
    args = ["--run", run]
    for section in FLINK_SECTIONS:
        args += model_args(getattr(spec, section), section)
    judge = spec.scoring.method is ScoringMethod.JUDGE
    key = spec.llm.api_key_secret_ref
    secrets: tuple[SecretEnv, ...] = ()
    if judge and key is not None:  # the judge calls the same provider with the same key
        secrets = (SecretEnv(env_name("scoring", "judge", "api_key"), key.name, key.key),)
    return FlinkPlan(
        mode=flink.mode or FlinkMode.OPERATOR,
        session=flink.session_cluster or f"{run}-{FLINK_SESSION}",
        managed=not flink.session_cluster,
        job=f"{run}-{SCORING}",
        module=FLINK_JOB_MODULE,
        args=tuple(args),
        parallelism=flink.parallelism,
        task_managers=flink.task_managers,
        secret_env=secrets,
        labels=labels(run, SCORING),
    )
