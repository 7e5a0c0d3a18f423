"""One planning function: a QARun (name, namespace, spec) -> the workloads it needs.

The plan is neutral: topics with partitions, components with replicas, command,
environment and Secret-backed environment, and the Flink job's parameters. The operator
realizes it as Kubernetes objects (KafkaTopics or topics through the Kafka Admin API,
Deployments, a Job, and a FlinkDeployment + FlinkSessionJob or a standalone session
cluster it submits to); a local runner realizes the same plan as local processes.
Nothing here talks to a cluster, so the plan is tested as plain data.

Environment contract (what each process reads, see qarun_workers.settings and
qarun_flink.params; groups nest with a double underscore for the workers):

    QARUN_RUN                       the run's name; topics are qarun.<run>.<stream>
    QARUN_KAFKA__BOOTSTRAP          Kafka bootstrap servers
    QARUN_KAFKA__PARTITIONS/_REPLICAS, QARUN_KAFKA__CREATE_TOPICS=false (the plan's
                                    topics are created by whoever realizes it)
    QARUN_LLM__BASE_URL, QARUN_LLM__MODEL, QARUN_LLM__MAX_CONCURRENCY,
    QARUN_LLM__TIMEOUT_SECONDS, QARUN_LLM__MAX_TOKENS, QARUN_LLM__REQUESTS_PER_MINUTE,
    QARUN_LLM__TOKENS_PER_MINUTE, QARUN_LLM__PROMPT_USD_PER_MILLION,
    QARUN_LLM__COMPLETION_USD_PER_MILLION
    QARUN_RETRY__MAX_ATTEMPTS, QARUN_RETRY__OVERLOAD_BASE_SECONDS,
    QARUN_RETRY__OVERLOAD_MAX_SECONDS, QARUN_RETRY__QUOTA_DELAY_SECONDS,
    QARUN_RETRY__QUOTA_MAX_WAIT_SECONDS,
    QARUN_RETRY__TIERS              e.g. "2s,10s,1m": the retry tier topics
    QARUN_BUDGET__MAX_TOKENS, QARUN_BUDGET__MAX_COST_USD
    QARUN_TRAFFIC__*                generator only: source, format, limit, distribution,
                                    rate, total, duration, burst
    QARUN_STORAGE__REDIS_URL        llm-worker (fleet limits, budget), generator
                                    (progress), storage-writer (answer cache)
    QARUN_STORAGE__CACHE_TTL_SECONDS storage-writer
    Secrets (only to the components that need them, never in args or logs):
    QARUN_LLM_API_KEY               llm-worker, and the Flink job when scoring is 'judge'
    QARUN_STORAGE__POSTGRES_DSN     generator (skips answered questions), storage-writer

The Flink job gets its parameters as arguments (`--run`, `--bootstrap`, `--scorer`,
`--threshold`, ...), the flags of qarun_flink.params, which fall back to the same
QARUN_* names (QARUN_KAFKA_BOOTSTRAP, QARUN_SCORING_THRESHOLD, ...) when run locally.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from qarun_core.spec import (
    FlinkMode,
    KafkaProvider,
    QARunSpec,
    Resources,
    ScoringMethod,
    SecretKeyRef,
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


class Kind(StrEnum):
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
    kind: Kind
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
    kafka = spec.kafka.model_copy(
        update={
            "provider": spec.kafka.provider or kafka_provider,
            "bootstrap_servers": spec.kafka.bootstrap_servers or kafka_bootstrap,
        }
    )
    flink = spec.flink.model_copy(update={"mode": spec.flink.mode or flink_mode})
    return spec.model_copy(update={"kafka": kafka, "flink": flink})


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _common_env(run: str, spec: QARunSpec, tiers: tuple[RetryTier, ...]) -> dict[str, str]:
    llm, retry, kafka = spec.llm, spec.retry, spec.kafka
    return {
        "QARUN_RUN": run,
        "QARUN_KAFKA__BOOTSTRAP": bootstrap(spec),
        "QARUN_KAFKA__PARTITIONS": str(kafka.partitions),
        "QARUN_KAFKA__REPLICAS": str(kafka.replicas),
        "QARUN_KAFKA__CREATE_TOPICS": "false",
        "QARUN_LLM__BASE_URL": llm.base_url,
        "QARUN_LLM__MODEL": llm.model,
        "QARUN_LLM__MAX_CONCURRENCY": str(llm.max_concurrency),
        "QARUN_LLM__TIMEOUT_SECONDS": _num(llm.timeout_seconds),
        "QARUN_LLM__MAX_TOKENS": str(llm.max_tokens),
        "QARUN_LLM__REQUESTS_PER_MINUTE": str(llm.requests_per_minute),
        "QARUN_LLM__TOKENS_PER_MINUTE": str(llm.tokens_per_minute),
        "QARUN_LLM__PROMPT_USD_PER_MILLION": _num(llm.pricing.prompt_usd_per_million),
        "QARUN_LLM__COMPLETION_USD_PER_MILLION": _num(llm.pricing.completion_usd_per_million),
        "QARUN_RETRY__MAX_ATTEMPTS": str(retry.max_attempts),
        "QARUN_RETRY__OVERLOAD_BASE_SECONDS": str(retry.overload.base_delay_seconds),
        "QARUN_RETRY__OVERLOAD_MAX_SECONDS": str(retry.overload.max_delay_seconds),
        "QARUN_RETRY__QUOTA_DELAY_SECONDS": str(retry.quota.delay_seconds),
        "QARUN_RETRY__QUOTA_MAX_WAIT_SECONDS": str(retry.quota.max_wait_seconds),
        "QARUN_RETRY__TIERS": ",".join(format_delay(t.delay_seconds) for t in tiers),
        "QARUN_BUDGET__MAX_TOKENS": str(spec.budget.max_tokens),
        "QARUN_BUDGET__MAX_COST_USD": _num(spec.budget.max_cost_usd),
    }


def _traffic_env(spec: QARunSpec) -> dict[str, str]:
    traffic, dataset = spec.traffic, spec.dataset
    return {
        "QARUN_TRAFFIC__SOURCE": dataset.source,
        "QARUN_TRAFFIC__FORMAT": dataset.format.value,
        "QARUN_TRAFFIC__LIMIT": str(dataset.limit),
        "QARUN_TRAFFIC__DISTRIBUTION": traffic.distribution.value,
        "QARUN_TRAFFIC__RATE_PER_SECOND": _num(traffic.rate_per_second),
        "QARUN_TRAFFIC__TOTAL": str(traffic.total),
        "QARUN_TRAFFIC__DURATION_SECONDS": str(traffic.duration_seconds),
        "QARUN_TRAFFIC__BURST_FACTOR": _num(traffic.burst.factor),
        "QARUN_TRAFFIC__BURST_EVERY_SECONDS": _num(traffic.burst.every_seconds),
        "QARUN_TRAFFIC__BURST_LENGTH_SECONDS": _num(traffic.burst.length_seconds),
    }


def _redis_env(spec: QARunSpec) -> dict[str, str]:
    return {"QARUN_STORAGE__REDIS_URL": spec.storage.redis_url}


def _storage_env(spec: QARunSpec) -> dict[str, str]:
    return {
        **_redis_env(spec),
        "QARUN_STORAGE__CACHE_TTL_SECONDS": str(spec.storage.cache_ttl_seconds),
    }


def _secret(env: str, ref: SecretKeyRef | None) -> tuple[SecretEnv, ...]:
    return () if ref is None else (SecretEnv(env, ref.name, ref.key),)


def _topic_config(spec: QARunSpec) -> dict[str, str]:
    return {
        "retention.ms": str(spec.kafka.retention_hours * 3600 * 1000),
        "min.insync.replicas": str(spec.kafka.min_in_sync_replicas),
    }


def plan(run: str, namespace: str, spec: QARunSpec) -> RunPlan:
    """The desired workloads of one run. Pure: the same input gives the same plan."""
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
    common = _common_env(run, spec, tiers)
    llm_key = _secret("QARUN_LLM_API_KEY", spec.llm.api_key_secret_ref)
    postgres = _secret("QARUN_STORAGE__POSTGRES_DSN", spec.storage.postgres_secret_ref)

    def component(
        role: str,
        kind: Kind,
        replicas: int,
        *,
        env: Mapping[str, str] | None = None,
        secrets: tuple[SecretEnv, ...] = (),
        resources: Resources | None = None,
    ) -> ComponentPlan:
        return ComponentPlan(
            role=role,
            name=f"{run}-{role}",
            kind=kind,
            command=(f"qarun-{role}",),
            replicas=replicas,
            env={**common, **(env or {})},
            secret_env=secrets,
            resources=resources,
            labels=labels(run, role),
        )

    components = (
        component(
            LLM_WORKER,
            Kind.SERVICE,
            spec.workers.replicas,
            env=_redis_env(spec),  # the fleet-wide rate limits and the budget live there
            secrets=llm_key,
            resources=spec.workers.resources,
        ),
        component(RETRY, Kind.SERVICE, 1),
        component(STORAGE_WRITER, Kind.SERVICE, 1, env=_storage_env(spec), secrets=postgres),
        component(
            GENERATOR,
            Kind.BATCH,
            1,
            env={**_traffic_env(spec), **_redis_env(spec)},  # progress checkpoints
            secrets=postgres,
        ),
    )
    return RunPlan(
        run=run,
        namespace=namespace,
        labels=labels(run),
        bootstrap=bootstrap(spec),
        kafka_cluster=spec.kafka.cluster,
        kafka_provider=spec.kafka.provider or KafkaProvider.STRIMZI,
        topics=topic_plans,
        components=components,
        flink=_flink_plan(run, spec, llm_key),
        selector=selector(run, LLM_WORKER),
    )


def _flink_plan(run: str, spec: QARunSpec, llm_key: tuple[SecretEnv, ...]) -> FlinkPlan:
    scoring, flink = spec.scoring, spec.flink
    args = [
        "--run", run,
        "--bootstrap", bootstrap(spec),
        "--scorer", scoring.method.value,
        "--threshold", _num(scoring.threshold),
        "--max-regenerations", str(scoring.max_regenerations),
        "--parallelism", str(flink.parallelism),
        "--checkpoint-interval-seconds", str(flink.checkpoint_interval_seconds),
    ]  # fmt: skip
    judge = scoring.method is ScoringMethod.JUDGE
    if judge:
        args += [
            "--llm-base-url", scoring.judge.base_url or spec.llm.base_url,
            "--llm-model", scoring.judge.model or spec.llm.model,
        ]  # fmt: skip
    managed = not flink.session_cluster
    return FlinkPlan(
        mode=flink.mode or FlinkMode.OPERATOR,
        session=flink.session_cluster or f"{run}-{FLINK_SESSION}",
        managed=managed,
        job=f"{run}-{SCORING}",
        module=FLINK_JOB_MODULE,
        args=tuple(args),
        parallelism=flink.parallelism,
        task_managers=flink.task_managers,
        secret_env=llm_key if judge else (),
        labels=labels(run, SCORING),
    )
