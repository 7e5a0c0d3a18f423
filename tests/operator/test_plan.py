"""The planning function and its Kubernetes rendering, as plain data."""

from __future__ import annotations

import json
from typing import Any

import yaml

from qarun_core import plan as p
from qarun_core.spec import FlinkMode, KafkaProvider, QARunSpec
from qarun_core.topics import RunTopics
from qarun_devstack.flink_session import flink_home
from qarun_operator import render
from qarun_operator.config import OperatorConfig

OWNER = render.Owner(name="demo", uid="1234")
SPEC_REDIS = "redis://redis.qarun.svc:6379/3"


def spec(**extra: object) -> QARunSpec:
    return QARunSpec.model_validate({"llm": {"model": "qarun-sim"}} | extra)


def test_plan_of_a_minimal_run() -> None:
    run = p.plan("demo", "ns", spec())
    assert [t.name for t in run.topics] == RunTopics(
        "demo", run_tiers := p.retry_tiers(spec())
    ).all()
    assert [t.delay_seconds for t in run_tiers] == [2, 10, 60]
    assert {t.partitions for t in run.topics} == {6}
    assert run.topics[0].config["retention.ms"] == str(168 * 3600 * 1000)
    assert [c.role for c in run.components] == [
        "llm-worker",
        "retry",
        "storage-writer",
        "generator",
    ]
    worker = run.component(p.LLM_WORKER)
    assert (worker.name, worker.kind, worker.replicas) == (
        "demo-llm-worker",
        p.WorkloadKind.SERVICE,
        2,
    )
    assert worker.command == ("qarun-llm-worker",)
    assert worker.env["QARUN_RUN"] == "demo"
    assert worker.env["QARUN_KAFKA__BOOTSTRAP_SERVERS"] == "qarun-kafka-bootstrap:9092"
    assert worker.env["QARUN_LLM__MODEL"] == "qarun-sim"
    assert worker.env["QARUN_RETRY__TIERS"] == "2s,10s,1m"
    assert worker.secret_env == ()  # no apiKeySecretRef: no key
    assert run.component(p.GENERATOR).kind is p.WorkloadKind.BATCH
    assert run.selector == "qarun.io/run=demo,qarun.io/component=llm-worker"
    assert run.flink.managed
    assert run.flink.session == "demo-flink"
    args = run.flink.args
    assert args[:2] == ("--run", "demo")
    assert args[args.index("--kafka.bootstrap-servers") + 1] == "qarun-kafka-bootstrap:9092"


def test_secrets_reach_only_the_components_that_need_them() -> None:
    run = p.plan(
        "demo",
        "ns",
        spec(
            llm={"model": "m", "apiKeySecretRef": {"name": "llm", "key": "k"}},
            scoring={"method": "judge"},
        ),
    )
    by_role = {c.role: {s.env for s in c.secret_env} for c in run.components}
    assert by_role == {
        "llm-worker": {"QARUN_LLM__API_KEY"},
        "retry": set(),
        "storage-writer": {"QARUN_STORAGE__POSTGRES_DSN"},
        "generator": {"QARUN_STORAGE__POSTGRES_DSN"},
    }
    assert run.flink.secret_env == (p.SecretEnv("QARUN_SCORING__JUDGE__API_KEY", "llm", "k"),)
    assert run.flink.args[run.flink.args.index("--scoring.judge.model") + 1] == "m"


def test_spec_values_reach_the_workloads() -> None:
    run = p.plan(
        "demo",
        "ns",
        spec(
            traffic={"ratePerSecond": 12.5, "total": 40, "distribution": "constant"},
            scoring={"threshold": 0.9, "maxRegenerations": 1},
            workers={"replicas": 7},
            retry={"overload": {"baseDelaySeconds": 5, "maxDelaySeconds": 300},
                   "quota": {"delaySeconds": 900}},
            kafka={"bootstrapServers": "127.0.0.1:9092", "partitions": 3},
            flink={"sessionCluster": "shared"},
            storage={"redisURL": SPEC_REDIS},
        ),
    )  # fmt: skip
    generator = run.component(p.GENERATOR)
    assert generator.env["QARUN_TRAFFIC__RATE_PER_SECOND"] == "12.5"
    assert generator.env["QARUN_TRAFFIC__TOTAL"] == "40"
    assert generator.env["QARUN_TRAFFIC__DISTRIBUTION"] == "constant"
    assert run.component(p.LLM_WORKER).replicas == 7
    redis_users = {
        c.role for c in run.components if c.env.get("QARUN_STORAGE__REDIS_URL") == SPEC_REDIS
    }
    assert redis_users == {p.LLM_WORKER, p.GENERATOR, p.STORAGE_WRITER}
    assert run.bootstrap == "127.0.0.1:9092"
    assert [t.name.rsplit(".", 1)[1] for t in run.topics][-5:] == [
        "retry-5s",
        "retry-10s",
        "retry-1m",
        "retry-5m",
        "retry-15m",
    ]
    assert {t.partitions for t in run.topics} == {3}
    args = run.flink.args
    assert args[args.index("--scoring.threshold") + 1] == "0.9"
    assert args[args.index("--scoring.max-regenerations") + 1] == "1"
    assert (run.flink.managed, run.flink.session) == (False, "shared")


def test_plan_is_deterministic() -> None:
    assert p.plan("demo", "ns", spec()) == p.plan("demo", "ns", spec())


def test_rendered_children_are_owned_labelled_and_hardened() -> None:
    run = p.plan("demo", "ns", spec(llm={"model": "m", "apiKeySecretRef": {"name": "llm"}}))
    manifests = render.manifests(run, OWNER, OperatorConfig())
    kinds = [m["kind"] for m in manifests]
    assert kinds.count("KafkaTopic") == len(run.topics)
    assert kinds[len(run.topics) :] == [
        "FlinkDeployment", "FlinkSessionJob", "Deployment", "Deployment", "Deployment", "Job",
    ]  # fmt: skip
    for m in manifests:
        assert m["metadata"]["namespace"] == "ns"
        assert m["metadata"]["ownerReferences"] == [OWNER.reference()]
        assert m["metadata"]["labels"]["qarun.io/run"] == "demo"
    topic = manifests[0]
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "qarun"
    worker = next(m for m in manifests if m["metadata"]["name"] == "demo-llm-worker")
    pod = worker["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert worker["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9100"
    assert worker["spec"]["selector"]["matchLabels"] == {
        "qarun.io/run": "demo",
        "qarun.io/component": "llm-worker",
    }
    session_job = next(m for m in manifests if m["kind"] == "FlinkSessionJob")
    assert session_job["spec"]["deploymentName"] == "demo-flink"
    assert session_job["spec"]["job"]["args"][:2] == ["-pym", "qarun_flink.job"]
    # The Flink operator uploads its empty jar without a jarURI (and refuses local://).
    assert "jarURI" not in session_job["spec"]["job"]
    assert "apiKey" not in json.dumps(manifests).replace('"key": "apiKey"', "")


def test_generator_job_hash_follows_its_template() -> None:
    config = OperatorConfig()

    def job_hash(rate: float) -> str:
        run = p.plan("demo", "ns", spec(traffic={"ratePerSecond": rate}))
        job = render.job(run, run.component(p.GENERATOR), OWNER, config)
        return str(job["metadata"]["annotations"][render.TEMPLATE_HASH])

    assert job_hash(5) == job_hash(5)
    assert job_hash(5) != job_hash(6)


def test_standalone_session_is_laid_out_as_flinks_standalone_kubernetes_session() -> None:
    run = p.plan(
        "demo", "ns",
        spec(flink={"mode": "standalone", "parallelism": 3, "taskManagers": 2},
             kafka={"provider": "plain"}),
    )  # fmt: skip
    manifests = render.manifests(run, OWNER, OperatorConfig())
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    # No Flink-operator or Strimzi resources: the operator submits and makes topics itself.
    assert not {k for k, _ in kinds} & {"FlinkDeployment", "FlinkSessionJob", "KafkaTopic"}
    assert {
        ("ConfigMap", "demo-flink-config"),
        ("PersistentVolumeClaim", "demo-flink-state"),
        ("Service", "demo-flink-jobmanager"),
        ("Service", "demo-flink-rest"),
        ("Deployment", "demo-flink-jobmanager"),
        ("Deployment", "demo-flink-taskmanager"),
    } <= kinds
    by_name = {(m["kind"], m["metadata"]["name"]): m for m in manifests}
    conf = yaml.safe_load(by_name["ConfigMap", "demo-flink-config"]["data"]["config.yaml"])
    assert conf["jobmanager.rpc.address"] == "demo-flink-jobmanager"
    assert (conf["jobmanager.rpc.port"], conf["blob.server.port"]) == (6123, 6124)
    assert conf["high-availability.type"] == "NONE"
    assert conf["taskmanager.numberOfTaskSlots"] == 2  # 3 subtasks on 2 TaskManagers
    assert conf["execution.checkpointing.dir"] == "file:///flink-state/checkpoints"
    # The distribution's JVM options come along (Flink reflects into java.base on 17).
    shipped = yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text())
    assert conf["env.java.opts.all"].split() == shipped["env"]["java"]["opts"]["all"].split()
    services = {
        n: {port["port"] for port in by_name["Service", n]["spec"]["ports"]}
        for n in ("demo-flink-jobmanager", "demo-flink-rest")
    }
    assert services == {"demo-flink-jobmanager": {6123, 6124}, "demo-flink-rest": {8081}}
    for role, replicas in (("jobmanager", 1), ("taskmanager", 2)):
        deployment = by_name["Deployment", f"demo-flink-{role}"]
        assert deployment["spec"]["replicas"] == replicas
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["command"] == [f"/opt/flink/bin/{role}.sh", "start-foreground"]
        assert container["image"] == OperatorConfig().flink_image
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claims == [
            {"name": "state", "persistentVolumeClaim": {"claimName": "demo-flink-state"}}
        ]
    selector = by_name["Deployment", "demo-flink-jobmanager"]["spec"]["selector"]["matchLabels"]
    assert by_name["Service", "demo-flink-rest"]["spec"]["selector"] == selector


def test_installation_defaults_fill_only_what_the_spec_leaves_open() -> None:
    def resolved(**fields: Any) -> QARunSpec:
        return p.with_installation_defaults(
            spec(**fields), flink_mode=FlinkMode.STANDALONE,
            kafka_provider=KafkaProvider.EXTERNAL, kafka_bootstrap="kafka.example:9092",
        )  # fmt: skip

    chosen = resolved()
    assert (chosen.flink.mode, chosen.kafka.provider) == ("standalone", "external")
    assert p.plan("r", "ns", chosen).bootstrap == "kafka.example:9092"
    own = resolved(flink={"mode": "operator"}, kafka={"provider": "strimzi"})
    assert (own.flink.mode, own.kafka.provider) == ("operator", "strimzi")
    assert p.plan("r", "ns", own).bootstrap == "qarun-kafka-bootstrap:9092"
