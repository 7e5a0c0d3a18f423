"""Both charts: helm lint, render (the stack with its upstream dependencies, offline), and
every rendered manifest through `kubectl apply --server-side --dry-run=server`; the
operator's RBAC is least-privilege (the acceptance tests prove it is enough)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from optools import CHARTS, OPERATOR_NAMESPACE, OPERATOR_SA, ROOT, ensure_namespace

from qarun_core import plan as p
from qarun_core.spec import QARunSpec
from qarun_devstack import paths
from qarun_devstack.kube import KubeCluster

STACK_NAMESPACE = "qarun-stack-test"


@pytest.fixture(scope="module")
def stack_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qarun-stack with its dependencies in charts/, as `helm dependency build` would leave
    them, taken from the offline copies of the upstream charts."""
    root = tmp_path_factory.mktemp("charts")
    chart = root / "qarun-stack"
    shutil.copytree(CHARTS / "qarun-stack", chart)
    (chart / "charts").mkdir()
    shutil.copytree(CHARTS / "qarun-operator", chart / "charts" / "qarun-operator")
    upstream = paths.upstream_charts()
    for name in ("strimzi-kafka-operator", "flink-kubernetes-operator"):
        paths.require(upstream / name, f"the upstream {name} chart", "set QARUN_UPSTREAM_CHARTS")
        shutil.copytree(upstream / name, chart / "charts" / name)
    declared = {
        d["name"] for d in yaml.safe_load((chart / "Chart.yaml").read_text())["dependencies"]
    }
    assert declared == {p.name for p in (chart / "charts").iterdir()}
    return chart


def docs(rendered: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d]


def test_helm_lint_is_clean(kube: KubeCluster, stack_chart: Path) -> None:
    for chart in (CHARTS / "qarun-operator", stack_chart):
        done = kube.helm("lint", "--strict", str(chart))
        assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout, done.stdout
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


VARIANTS: dict[str, tuple[str, list[str]]] = {
    "operator-cluster-wide": ("operator", []),
    "operator-namespaced": ("operator", ["--set", f"watchNamespaces={{{STACK_NAMESPACE}}}"]),
    "stack-simulator": ("stack", []),
    "stack-external-llm": (
        "stack",
        ["--set", "llm.mode=external", "--set", "llm.external.apiKey=sk-test-only",
         "--set", "kafka.storage.type=ephemeral", "--set", "kafka.replicas=3"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_manifest_passes_server_side_dry_run(
    qarun_crd: KubeCluster, stack_chart: Path, variant: str
) -> None:
    kube = qarun_crd
    chart, extra = VARIANTS[variant]
    path = CHARTS / "qarun-operator" if chart == "operator" else stack_chart
    namespace = OPERATOR_NAMESPACE if chart == "operator" else STACK_NAMESPACE
    for name in (namespace, STACK_NAMESPACE):
        ensure_namespace(kube, name)
    rendered = kube.helm(
        "template", "qarun", str(path), "--namespace", namespace, "--include-crds", *extra
    ).stdout
    manifests = docs(rendered)
    assert len(manifests) >= 5
    done = kube.kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "-f", "-", input=rendered
    )
    applied = [line for line in done.stdout.splitlines() if "serverside-applied" in line]
    assert len(applied) == len(manifests), done.stdout
    kinds = {m["kind"] for m in manifests}
    if chart == "stack":
        assert {"Kafka", "KafkaNodePool", "StatefulSet", "CustomResourceDefinition"} <= kinds
        crds = {m["metadata"]["name"] for m in manifests if m["kind"] == "CustomResourceDefinition"}
        assert {
            "qaruns.qarun.io",
            "kafkatopics.kafka.strimzi.io",
            "flinksessionjobs.flink.apache.org",
        } <= crds
        secrets = {m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"}
        assert ("llm-credentials" in secrets) == (variant == "stack-external-llm")
        assert ("qarun-llm-sim" in {m["metadata"]["name"] for m in manifests}) == (
            variant == "stack-simulator"
        )
    elif variant == "operator-namespaced":
        assert "ClusterRole" not in kinds and "Role" in kinds
    else:
        assert "ClusterRole" in kinds


def test_values_schema_rejects_bad_values(kube: KubeCluster, stack_chart: Path) -> None:
    bad = [
        (stack_chart, ["--set", "llm.mode=psychic"], "mode"),
        (stack_chart, ["--set", "kafka.replicas=0"], "replicas"),
        (CHARTS / "qarun-operator", ["--set", "logLevel=loud"], "logLevel"),
        (CHARTS / "qarun-operator", ["--set", "nonsense=1"], "nonsense"),
    ]
    for chart, args, field in bad:
        done = kube.helm("template", "qarun", str(chart), *args, check=False)
        assert done.returncode != 0, args
        assert field in done.stderr, done.stderr


def test_operator_pod_is_hardened(kube: KubeCluster) -> None:
    rendered = kube.helm(
        "template", "qarun-operator", str(CHARTS / "qarun-operator"),
        "--show-only", "templates/controller/deployment.yaml",
    ).stdout  # fmt: skip
    pod = docs(rendered)[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert "--all-namespaces" in container["args"]
    # kopf asks getpass for the user name, which fails for a uid without a passwd entry
    # (the image's 10001) unless the environment names one.
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env.get("USER") or env.get("LOGNAME"), "kopf would crash: getpwuid(10001)"


def test_operator_rbac_has_no_wildcard_and_no_secrets(operator_rbac: KubeCluster) -> None:
    kube = operator_rbac
    listed = kube.kubectl("auth", "can-i", "--list", f"--as={OPERATOR_SA}", "-n", "default").stdout
    rows = [line.split() for line in listed.splitlines()[1:] if line.strip()]
    # Non-resource URLs (/api/*, /healthz, ...) come from the built-in discovery roles that
    # every authenticated user has; the resource rows are the chart's and RBAC's defaults.
    rows = [row for row in rows if not row[0].startswith("[/")]
    assert rows
    for row in rows:
        assert "*" not in row[0], row
        assert "*" not in row[-1], row
    rendered = kube.helm(
        "template", "qarun-operator", str(CHARTS / "qarun-operator"),
        "--show-only", "templates/rbac/clusterrole.yaml",
    ).stdout  # fmt: skip
    rules = docs(rendered)[0]["rules"]
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    granted = {row[0] for row in rows}
    assert {
        "qaruns.qarun.io",
        "kafkatopics.kafka.strimzi.io",
        "deployments.apps",
        "jobs.batch",
    } <= granted

    def can(verb: str, resource: str, namespace: str = "default") -> bool:
        done = kube.kubectl(
            "auth", "can-i", verb, resource, f"--as={OPERATOR_SA}", "-n", namespace, check=False
        )
        return done.stdout.strip() == "yes"

    assert can("patch", "qaruns/status")
    assert can("patch", "qaruns/scale")
    assert can("create", "flinksessionjobs.flink.apache.org")
    # A standalone Flink session: its ConfigMap, Services and checkpoint volume's claim.
    for resource in ("configmaps", "services", "persistentvolumeclaims"):
        assert can("create", resource) and can("delete", resource), resource
    for verb, resource in [
        ("get", "secrets"), ("list", "secrets"), ("create", "pods"), ("delete", "qaruns"),
        ("create", "clusterroles"), ("create", "rolebindings"), ("update", "deployments"),
        ("update", "configmaps"), ("create", "persistentvolumes"),
        ("create", "serviceaccounts/token"),
    ]:  # fmt: skip
        assert not can(verb, resource), f"the operator may {verb} {resource}"


def test_stack_wires_names_a_qarun_uses_by_default(kube: KubeCluster, stack_chart: Path) -> None:
    manifests = docs(kube.helm("template", "qarun", str(stack_chart), "-n", STACK_NAMESPACE).stdout)
    names = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    assert {
        ("Kafka", "qarun"),
        ("Service", "qarun-llm-sim"),
        ("Service", "qarun-redis"),
        ("Service", "qarun-api"),
        ("Secret", "qarun-postgres"),
    } <= names
    secret = next(
        m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == "qarun-postgres"
    )
    assert secret["stringData"]["dsn"].startswith("postgresql://qarun:")
    operator = next(
        m
        for m in manifests
        if m["kind"] == "Deployment"
        and m["metadata"]["labels"].get("app.kubernetes.io/name") == "qarun-operator"
    )
    env = {
        e["name"]: e.get("value")
        for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["QARUN_OPERATOR__WORKER_IMAGE"] == "qarun/workers:0.1.0"
    assert json.dumps(manifests).count("sk-") == 0


def test_sample_run_references_only_secrets_the_stack_creates(
    kube: KubeCluster, stack_chart: Path
) -> None:
    """k8s/qarun.yaml on the default stack (the simulator) must not name a Secret that
    does not exist: its pods would sit in CreateContainerConfigError."""
    manifests = docs(kube.helm("template", "qarun", str(stack_chart), "-n", STACK_NAMESPACE).stdout)
    secrets = {m["metadata"]["name"] for m in manifests if m["kind"] == "Secret"}
    sample = yaml.safe_load((ROOT / "k8s" / "qarun.yaml").read_text())
    run = p.plan(
        sample["metadata"]["name"], STACK_NAMESPACE, QARunSpec.model_validate(sample["spec"])
    )
    referenced = {s.secret for c in run.components for s in c.secret_env}
    assert referenced, "the sample run names no Secret at all (PostgreSQL's DSN is one)"
    assert referenced <= secrets, f"missing Secrets: {referenced - secrets}"


# Strimzi releases the stack may pin, with the Kafka versions each runs (the image map
# of its chart). Strimzi went from 0.51.0 to 1.0.0; 1.x serves only the v1 API.
STRIMZI_RELEASES = {"1.2.0": ("4.2.0", "4.2.1", "4.3.0", "4.3.1")}


def test_strimzi_pin_is_a_release_matching_the_chart_the_tests_render() -> None:
    chart = yaml.safe_load((CHARTS / "qarun-stack" / "Chart.yaml").read_text())
    pinned = {d["name"]: d["version"] for d in chart["dependencies"]}["strimzi-kafka-operator"]
    assert pinned in STRIMZI_RELEASES, f"Strimzi {pinned} is not a release the stack knows"
    image_map = paths.upstream_charts() / "strimzi-kafka-operator/templates/_kafka_image_map.tpl"
    kafka = sorted(set(re.findall(r"^\s+(\d+\.\d+\.\d+)=", image_map.read_text(), re.M)))
    assert tuple(kafka) == STRIMZI_RELEASES[pinned], kafka


def test_image_registry_and_tags_reach_every_qarun_image(
    kube: KubeCluster, stack_chart: Path
) -> None:
    """Every QARun image is [global.imageRegistry/]qarun/NAME:<appVersion> unless a tag is
    set: what `make images` pushes and `kind load docker-image` loads."""
    version = yaml.safe_load((CHARTS / "qarun-stack" / "Chart.yaml").read_text())["appVersion"]

    def images(*extra: str) -> tuple[set[str], dict[str, str]]:
        rendered = kube.helm("template", "qarun", str(stack_chart), "-n", STACK_NAMESPACE, *extra)
        manifests = docs(rendered.stdout)
        found, env = set(), {}
        for m in manifests:
            if m["kind"] in ("Deployment", "StatefulSet") and m["metadata"]["name"].startswith(
                ("qarun-api", "qarun-llm-sim", "qarun-qarun-operator")
            ):
                container = m["spec"]["template"]["spec"]["containers"][0]
                found.add(container["image"])
                env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
        return found, env

    found, env = images()
    assert found == {f"qarun/workers:{version}", f"qarun/operator:{version}"}
    assert env["QARUN_OPERATOR__WORKER_IMAGE"] == f"qarun/workers:{version}"
    assert env["QARUN_OPERATOR__FLINK_IMAGE"] == f"qarun/flink:{version}"
    found, env = images("--set", "global.imageRegistry=registry.local:5000")
    assert found == {
        f"registry.local:5000/qarun/workers:{version}",
        f"registry.local:5000/qarun/operator:{version}",
    }
    assert env["QARUN_OPERATOR__FLINK_IMAGE"] == f"registry.local:5000/qarun/flink:{version}"
