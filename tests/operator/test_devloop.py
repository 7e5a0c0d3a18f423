"""The developer loop's files: kind-config.yaml and the Tiltfile.

Neither kind nor tilt can run here (no container engine), and tilt is not built: the
Tiltfile is evaluated as Starlark (a Python subset) against recording stand-ins for the
Tilt built-ins it calls, and what it refers to is checked for real: Dockerfiles and
synced paths exist, the chart renders with helm with the Tiltfile's own settings, and
every k8s_resource names a workload of that rendering. kind-config.yaml is checked
strictly against the fields of kind's v1alpha4 Cluster type.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from optools import CHARTS, ROOT

from qarun_devstack import paths
from qarun_devstack.kube import KubeCluster

# sigs.k8s.io/kind/pkg/apis/config/v1alpha4 (types.go): the fields kind accepts.
KIND_CLUSTER = {"kind", "apiVersion", "name", "nodes", "networking", "featureGates",
                "runtimeConfig", "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902",
                "containerdConfigPatches", "containerdConfigPatchesJSON6902"}  # fmt: skip
KIND_NODE = {"role", "image", "labels", "extraMounts", "extraPortMappings",
             "kubeadmConfigPatches", "kubeadmConfigPatchesJSON6902"}  # fmt: skip
KIND_PORT_MAPPING = {"containerPort", "hostPort", "listenAddress", "protocol"}
KIND_NETWORKING = {"ipFamily", "apiServerPort", "apiServerAddress", "podSubnet",
                   "serviceSubnet", "disableDefaultCNI", "kubeProxyMode", "dnsSearch"}  # fmt: skip


def test_kind_config_is_a_valid_v1alpha4_cluster() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert set(config) <= KIND_CLUSTER
    assert set(config.get("networking", {})) <= KIND_NETWORKING
    assert config["networking"]["ipFamily"] in ("ipv4", "ipv6", "dual")
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1
    assert set(roles) <= {"control-plane", "worker"}
    mapped: dict[int, int] = {}
    for node in config["nodes"]:
        assert set(node) <= KIND_NODE
        assert node["image"].startswith("kindest/node:v")  # pinned
        for mapping in node.get("extraPortMappings", []):
            assert set(mapping) <= KIND_PORT_MAPPING
            assert mapping["protocol"] in ("TCP", "UDP", "SCTP")
            assert mapping["listenAddress"] == "127.0.0.1"
            assert 30000 <= mapping["containerPort"] <= 32767  # NodePort range
            mapped[mapping["hostPort"]] = mapping["containerPort"]
    assert {8080, 8081} <= set(mapped)  # API + dashboard, Flink UI
    tiltfile = (ROOT / "Tiltfile").read_text()
    assert f"api.nodePort={mapped[8080]}" in tiltfile


class Recorder:
    """Stand-ins for the Tilt built-ins: each call is recorded with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def builtin(self, name: str, result: Any = None) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return result(*args, **kwargs) if callable(result) else result

        return call

    def named(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(a, k) for n, a, k in self.calls if n == name]


# What the extensions' functions return, where the Tiltfile uses the result.
EXTENSIONS: dict[str, Any] = {
    "namespace_inject": lambda manifests, namespace: ("namespace_inject", manifests, namespace),
}


def copied_paths(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile's COPY instructions read (not --from=stage)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    paths: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        # uv.loc[k]: a glob that copies uv.lock when `make setup` has written it.
        paths += [re.sub(r"\[(.)\]", r"\1", w) for w in words[1:-1] if not w.startswith("--")]
    return paths


def evaluate_tiltfile(helm_render: Any) -> Recorder:
    source = (ROOT / "Tiltfile").read_text()
    tree = ast.parse(source, "Tiltfile")
    # Starlark has no classes, imports, while, try, lambdas-with-defaults or global state.
    for node in ast.walk(tree):
        assert not isinstance(
            node, ast.ClassDef | ast.Import | ast.ImportFrom | ast.While | ast.Try | ast.Global
        ), ast.dump(node)
    rec = Recorder()
    scope: dict[str, Any] = {
        "__builtins__": {"str": str, "len": len, "print": print},
        "read_file": rec.builtin("read_file", lambda path: (ROOT / path).read_text()),
        "os": type("os", (), {"path": type("path", (), {"exists": staticmethod(os.path.exists)})}),
        "helm": rec.builtin("helm", helm_render),
        "sync": rec.builtin("sync", lambda src, dst: (src, dst)),
    }
    for name in ("allow_k8s_contexts", "docker_build", "k8s_yaml", "k8s_resource",
                 "local_resource", "local"):  # fmt: skip
        scope[name] = rec.builtin(name)

    def load(module: str, *names: str) -> None:
        """Starlark's load() binds the extension's names into the module scope."""
        assert module.startswith("ext://"), module
        for name in names:
            scope[name] = rec.builtin(name, EXTENSIONS.get(name))

    scope["load"] = load
    cwd = Path.cwd()
    os.chdir(ROOT)
    try:
        exec(compile(tree, "Tiltfile", "exec"), scope)  # noqa: S102 - the project's Tiltfile
    finally:
        os.chdir(cwd)
    return rec


@pytest.fixture(scope="module")
def stack_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("tilt") / "qarun-stack"
    shutil.copytree(CHARTS / "qarun-stack", chart)
    shutil.copytree(CHARTS / "qarun-operator", chart / "charts" / "qarun-operator")
    for name in ("strimzi-kafka-operator", "flink-kubernetes-operator"):
        shutil.copytree(paths.upstream_charts() / name, chart / "charts" / name)
    return chart


def test_tiltfile_evaluates_and_its_references_hold(kube: KubeCluster, stack_copy: Path) -> None:
    rendered: list[dict[str, Any]] = []

    def helm_render(path: str, name: str, namespace: str, set: list[str]) -> str:
        assert (ROOT / path / "Chart.yaml").exists()
        args = [arg for item in set for arg in ("--set", item)]
        out = kube.helm("template", name, str(stack_copy), "--namespace", namespace, *args).stdout
        rendered.extend(d for d in yaml.safe_load_all(out) if d)
        return out

    rec = evaluate_tiltfile(helm_render)
    assert rec.named("allow_k8s_contexts")[0][0] == ("kind-qarun",)

    images = {}
    for args, kwargs in rec.named("docker_build") + rec.named("docker_build_with_restart"):
        ref, context = args[0], args[1]
        dockerfile = ROOT / kwargs["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        text = dockerfile.read_text()
        assert "\nUSER " in text and "USER root\n" not in text.split("\nUSER ")[-1]  # non-root last
        only = kwargs.get("only", [])
        for path in only:
            assert (ROOT / path).exists() or path.startswith(".cache") or path == "uv.lock", path
        # Tilt sends only these paths as the build context: every COPY must find its source.
        for source in copied_paths(dockerfile):
            assert any(source == p or source.startswith(p.rstrip("/") + "/") for p in only), (
                f"{kwargs['dockerfile']} copies {source}, which the Tiltfile's only= leaves out"
            )
        for src, _ in kwargs.get("live_update", []):
            assert (ROOT / src).is_dir(), src
        images[ref] = context
    assert set(images) == {"qarun/operator", "qarun/workers", "qarun/flink"}

    workloads = {
        m["metadata"]["name"] for m in rendered if m["kind"] in ("Deployment", "StatefulSet")
    }
    resources = rec.named("k8s_resource")
    assert resources
    for args, _ in resources:
        assert args[0] in workloads, f"k8s_resource {args[0]} is not a workload of the chart"
    operator = next(
        m
        for m in rendered
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "qarun-qarun-operator"
    )
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("qarun/operator:")
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Tilt substitutes the tag it built wherever the image's name appears.
    assert env["QARUN_OPERATOR__WORKER_IMAGE"].startswith("qarun/workers:")
    assert env["QARUN_OPERATOR__FLINK_IMAGE"].startswith("qarun/flink:")
    # The restart wrapper runs the entrypoint followed by the container's args.
    [(_, restart)] = rec.named("docker_build_with_restart")
    assert "command" not in container
    argv = [*restart["entrypoint"], *container["args"]]
    assert argv[:2] == ["kopf", "run"] and argv.count("run") == 1, argv
    api = next(
        m for m in rendered if m["kind"] == "Service" and m["metadata"]["name"] == "qarun-api"
    )
    assert api["spec"]["type"] == "NodePort"
    assert api["spec"]["ports"][0]["nodePort"] == 30080
    # The sample run goes to the stack's namespace, which the Tiltfile creates.
    assert rec.named("namespace_create")[0][0] == ("qarun",)
    sample = (ROOT / "k8s" / "qarun.yaml").read_text()
    assert rec.named("k8s_yaml")[-1][0] == (("namespace_inject", sample, "qarun"),)
