"""A run's standalone Flink session cluster, laid out as Flink's standalone Kubernetes
session: a ConfigMap with config.yaml and the console logging, a JobManager Deployment
with its RPC/blob Service and its REST Service, and a TaskManager Deployment, from the
project's Flink image. No Flink operator is involved: the QARun operator submits the
scoring job itself (flink_submit.py).

High availability is off (one JobManager). Checkpoints and savepoints go to a
ReadWriteOnce volume that both pods mount (one node; a ReadWriteMany StorageClass on
several): after a TaskManager restart the JobManager recovers the job from its latest
checkpoint, and after a JobManager restart the operator resubmits it from the latest
checkpoint it recorded in the QARun's status.
"""

from __future__ import annotations

import hashlib

import yaml

from qarun_core import plan as p
from qarun_operator.config import OperatorConfig
from qarun_operator.objects import JSON

RPC_PORT, BLOB_PORT, TASK_RPC_PORT, REST_PORT = 6123, 6124, 6122, 8081
CONF_DIR = "/etc/flink"
STATE_DIR = "/flink-state"
CONFIG_HASH = "qarun.io/flink-config-hash"
# The JVM options of Flink's own config.yaml for Java 17 (Flink reflects into these
# modules); a config.yaml of our own replaces the distribution's, so it carries them.
_OPENED = ("java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch", "java.lang.reflect",
           "java.text", "java.time", "java.util", "java.util.concurrent",
           "java.util.concurrent.atomic", "java.util.concurrent.locks")  # fmt: skip
_JAVAC = ("api", "file", "parser", "tree", "util")
_EXPORTED = ("java.rmi/sun.rmi.registry",
             *(f"jdk.compiler/com.sun.tools.javac.{m}" for m in _JAVAC),
             "java.security.jgss/sun.security.krb5")  # fmt: skip
JAVA_OPTS = " ".join(
    [*(f"--add-exports={m}=ALL-UNNAMED" for m in _EXPORTED),
     *(f"--add-opens=java.base/{m}=ALL-UNNAMED" for m in _OPENED)]
)  # fmt: skip
LOG4J_CONSOLE = """\
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
"""


def names(session: str) -> dict[str, str]:
    return {
        "config": f"{session}-config",
        "state": f"{session}-state",
        "jobmanager": f"{session}-jobmanager",  # the RPC and blob Service
        "rest": f"{session}-rest",  # the REST Service the operator submits through
        "taskmanager": f"{session}-taskmanager",
    }


def slots(flink: p.FlinkPlan) -> int:
    return max(1, -(-flink.parallelism // flink.task_managers))


def flink_config(flink: p.FlinkPlan, config: OperatorConfig) -> JSON:
    n = names(flink.session)
    return {
        "env.java.opts.all": JAVA_OPTS,
        "jobmanager.rpc.address": n["jobmanager"],
        "jobmanager.rpc.port": RPC_PORT,
        "jobmanager.bind-host": "0.0.0.0",  # noqa: S104 - a pod's own interfaces
        "taskmanager.bind-host": "0.0.0.0",  # noqa: S104
        "taskmanager.rpc.port": TASK_RPC_PORT,
        "blob.server.port": BLOB_PORT,
        "rest.port": REST_PORT,
        "rest.address": n["rest"],
        "rest.bind-address": "0.0.0.0",  # noqa: S104
        "taskmanager.numberOfTaskSlots": slots(flink),
        "parallelism.default": flink.parallelism,
        "jobmanager.memory.process.size": "1024m",
        "taskmanager.memory.process.size": "1536m",
        "high-availability.type": "NONE",
        "execution.checkpointing.dir": f"file://{STATE_DIR}/checkpoints",
        "execution.checkpointing.savepoint-dir": f"file://{STATE_DIR}/savepoints",
        # The operator records a checkpoint every status interval; keeping three means
        # the one it recorded still exists when a newer one completes meanwhile.
        "execution.checkpointing.num-retained": 3,
        "restart-strategy.type": "exponential-delay",
        "python.client.executable": config.flink_python,
        "python.executable": config.flink_python,
        # The root file system is read-only: every scratch directory lives in /tmp.
        "io.tmp.dirs": "/tmp",  # noqa: S108
        "web.tmpdir": "/tmp/flink-web",  # noqa: S108
        "web.upload.dir": "/tmp/flink-web",  # noqa: S108
        "blob.storage.directory": "/tmp/flink-blobs",  # noqa: S108
    }


def _meta(run: p.RunPlan, name: str, component: str, owner: JSON) -> JSON:
    return {
        "name": name,
        "namespace": run.namespace,
        "labels": {**run.labels, p.LABEL_COMPONENT: component},
        "ownerReferences": [owner],
    }


def _container(
    role: str, run: p.RunPlan, config: OperatorConfig, ports: dict[str, int], memory: str
) -> JSON:
    container: JSON = {
        "name": role,
        "image": config.flink_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": [f"{config.flink_home}/bin/{role}.sh", "start-foreground"],
        "env": [
            {"name": "FLINK_CONF_DIR", "value": CONF_DIR},
            {"name": "FLINK_LOG_DIR", "value": "/tmp/flink-log"},  # noqa: S108
            *(
                {"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
                for s in run.flink.secret_env
            ),
        ],
        "ports": [{"name": n, "containerPort": port} for n, port in ports.items()],
        # A small CPU request: the session idles between bursts, and a node of a few
        # cores also runs the run's workers.
        "resources": {"requests": {"cpu": "100m", "memory": memory}, "limits": {"memory": memory}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "config", "mountPath": CONF_DIR, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
        ],
    }
    return container


def _deployment(
    run: p.RunPlan, role: str, container: JSON, *,
    replicas: int, owner: JSON, config: OperatorConfig, conf: str,
) -> JSON:  # fmt: skip
    component = f"flink-{role}"
    match = {p.LABEL_RUN: run.run, p.LABEL_COMPONENT: component}
    uid = config.flink_uid
    n = names(run.flink.session)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(run, n[role], component, owner),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match},
            # One JobManager at a time: two would each think they run the session.
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {
                    "labels": {**run.labels, p.LABEL_COMPONENT: component},
                    # Flink reads its configuration once: a changed one rolls the pods.
                    "annotations": {CONFIG_HASH: hashlib.sha256(conf.encode()).hexdigest()[:16]},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": uid,
                        "runAsGroup": uid,
                        "fsGroup": uid,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": n["config"]}},
                        {"name": "state", "persistentVolumeClaim": {"claimName": n["state"]}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
                    ],
                },
            },
        },
    }


def _service(run: p.RunPlan, name: str, ports: dict[str, int], owner: JSON) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(run, name, "flink-jobmanager", owner),
        "spec": {
            "type": "ClusterIP",
            "selector": {p.LABEL_RUN: run.run, p.LABEL_COMPONENT: "flink-jobmanager"},
            "ports": [
                {"name": n, "port": port, "targetPort": port, "protocol": "TCP"}
                for n, port in ports.items()
            ],
        },
    }


def manifests(run: p.RunPlan, owner: JSON, config: OperatorConfig) -> list[JSON]:
    """The session cluster's objects, in the order they are applied."""
    f = run.flink
    n = names(f.session)
    conf = yaml.safe_dump(flink_config(f, config), sort_keys=False)
    claim: JSON = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": config.flink_state_size}},
    }
    if config.flink_state_storage_class:
        claim["storageClassName"] = config.flink_state_storage_class
    jobmanager = _container(
        "jobmanager", run, config, {"rpc": RPC_PORT, "blob": BLOB_PORT, "rest": REST_PORT}, "1Gi"
    )
    jobmanager["readinessProbe"] = {
        "httpGet": {"path": "/overview", "port": "rest"},
        "periodSeconds": 5,
    }
    jobmanager["livenessProbe"] = {
        "tcpSocket": {"port": "rpc"},
        "initialDelaySeconds": 30,
        "periodSeconds": 20,
    }
    taskmanager = _container("taskmanager", run, config, {"rpc": TASK_RPC_PORT}, "1536Mi")
    taskmanager["livenessProbe"] = {
        "tcpSocket": {"port": "rpc"},
        "initialDelaySeconds": 30,
        "periodSeconds": 20,
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(run, n["config"], "flink-config", owner),
            "data": {"config.yaml": conf, "log4j-console.properties": LOG4J_CONSOLE},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": _meta(run, n["state"], "flink-state", owner),
            "spec": claim,
        },
        _service(run, n["jobmanager"], {"rpc": RPC_PORT, "blob": BLOB_PORT}, owner),
        _service(run, n["rest"], {"rest": REST_PORT}, owner),
        _deployment(
            run, "jobmanager", jobmanager, replicas=1, owner=owner, config=config, conf=conf
        ),
        _deployment(
            run, "taskmanager", taskmanager,
            replicas=f.task_managers, owner=owner, config=config, conf=conf,
        ),
    ]  # fmt: skip
