"""A real single-node Kubernetes cluster on this machine, for tests and `make cluster`.

    with RealCluster() as cluster:      # or the session fixture `real_cluster`
        cluster.kubeconfig              # admin kubeconfig (KUBECONFIG=...)
        cluster.registry                # "localhost:5001": the prefix pod images name
        cluster.registry_push           # "10.250.<slot>.2:5001": push here (plain HTTP)
        cluster.node_ip                 # the node's address, 10.250.<slot>.2
        cluster.kubectl("get", "nodes")

The control plane of `kube.KubeCluster` (etcd, kube-apiserver with a real CA and
Node+RBAC authorization, controller-manager, scheduler) listens on the host end of the
node's veth pair (10.250.<slot>.1), the `kubernetes` Service's endpoint, so pods (the
QARun operator among them) reach it with their in-cluster config. The node
(`node.Node`: containerd, runc, CNI, kubelet, kube-proxy, the registry) runs in its own
network namespace; CoreDNS runs as a Deployment in kube-system. Claims bind to
hostPath volumes in the node's work directory (`volumes`: the default StorageClass
`node-local` and its provisioner, a thread of this process).

Images: `scripts/build-images.sh` (`make images`) builds and pushes every image into
the registry store the node serves; pods name them `localhost:5001/qarun/<name>:<tag>`
(`images.image_ref(name)`: operator, workers, flink at the charts' appVersion; kafka,
postgres, redis, flink-base, coredns, pause at their versions). Another image reaches a
running node with `podman push --tls-verify=false IMAGE docker://<registry_push>/qarun/...`.

Stop removes everything from the host: processes, mounts under the work dir, the
namespace (and with it the bridge, veths and every iptables chain of kube-proxy and
CNI), the node's cgroups, CNI's cache files, and kubelet's host-wide sysctls.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from qarun_devstack import coredns, images, nodehost
from qarun_devstack.kube import KubeCluster
from qarun_devstack.node import CLUSTER_DNS, NODE_NAME, Node
from qarun_devstack.pki import ClusterPki
from qarun_devstack.process import ServiceError
from qarun_devstack.volumes import NodeVolumes

KUBELET_USER = f"system:node:{NODE_NAME}"
PROXY_USER = "system:kube-proxy"  # bound to system:node-proxier by the default RBAC
SERVICE_IP = "10.96.0.1"  # the kubernetes Service: first address of the service range
NODE_READY_SECONDS = 120
DNS_READY_SECONDS = 180


@dataclass
class RealCluster:
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="qarun-node-")))
    keep_workdir: bool = False
    startup_seconds: dict[str, float] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.control_plane: KubeCluster | None = None
        self.node: Node | None = None
        self.volumes: NodeVolumes | None = None

    @property
    def kubeconfig(self) -> Path:
        assert self.control_plane is not None, "the cluster is not started"
        return self.control_plane.kubeconfig

    @property
    def registry(self) -> str:
        return images.REGISTRY

    @property
    def registry_push(self) -> str:
        assert self.node is not None, "the cluster is not started"
        return self.node.registry_push

    @property
    def node_ip(self) -> str:
        assert self.node is not None, "the cluster is not started"
        return self.node.ip

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        assert self.control_plane is not None, "the cluster is not started"
        return self.control_plane.kubectl(*args, input=input, check=check, timeout=timeout)

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> RealCluster:
        slot = nodehost.claim_slot()
        try:
            self._start(slot)
        except BaseException:
            if self.node is None:
                os.close(slot.lock_fd)
            self.stop()
            raise
        return self

    def _timed(self, name: str, started: float) -> None:
        self.startup_seconds[name] = round(time.monotonic() - started, 1)

    def _start(self, slot: nodehost.NodeSlot) -> None:
        started = time.monotonic()
        pki = ClusterPki(self.workdir / "pki").create(
            [slot.host_ip, SERVICE_IP, "127.0.0.1"],
            ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", "localhost"],
        )  # fmt: skip
        cp = KubeCluster(
            self.workdir / "control-plane",
            address=slot.host_ip,
            kwok=False,
            pki=pki,
            identities=[(KUBELET_USER, "system:nodes"), (PROXY_USER, "system:node-proxiers")],
            upstream_crds=False,
        )
        cp.workdir.mkdir(parents=True, exist_ok=True)
        self.node = Node(
            self.workdir / "node",
            slot,
            kubelet_kubeconfig=cp.workdir / "kubelet.kubeconfig",
            proxy_kubeconfig=cp.workdir / "kube-proxy.kubeconfig",
            ca_cert=pki.ca_cert,
        )
        # The host end of the pair must exist before the API server binds to it.
        self.node.start_runtime()
        self._timed("node runtime (netns, registry, containerd)", started)
        started = time.monotonic()
        self.control_plane = cp
        cp.start()
        # In the slot's cgroup, so that the next start in this slot stops them if this
        # run is killed hard (an API server whose etcd is gone may ignore SIGTERM).
        for service in cp.services:
            if service.proc is not None:
                nodehost.join_cgroup(slot, "control-plane", service.proc.pid)
        for user, path in ((KUBELET_USER, self.node.kubelet_kubeconfig),
                           (PROXY_USER, self.node.proxy_kubeconfig)):  # fmt: skip
            cp.write_kubeconfig(path, user, cp.tokens[user])
        # Before any pod: a claim binds as soon as it is made.
        self.volumes = NodeVolumes(cp.kubeconfig, self.node.workdir / "volumes").start()
        self._timed("control plane", started)
        started = time.monotonic()
        self.node.start_kubelet(cp.server)
        self._wait(self._node_ready, NODE_READY_SECONDS, f"node {NODE_NAME} Ready", "kubelet")
        self.node.start_kube_proxy()
        self._timed("kubelet + kube-proxy (node Ready)", started)
        started = time.monotonic()
        manifests = {
            "apiVersion": "v1",
            "kind": "List",
            "items": coredns.coredns_manifests(CLUSTER_DNS),
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifests))
        self._wait(self._dns_ready, DNS_READY_SECONDS, "CoreDNS Available", "kubelet")
        self._timed("CoreDNS", started)

    def _wait(self, ready: object, timeout: float, what: str, log: str) -> None:
        assert callable(ready) and self.node is not None
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"not {what} after {timeout:.0f} s.\n{self._diagnosis()}\n"
                    f"{log} log: {self.node.workdir / (log + '.log')}"
                )
            time.sleep(1)

    def _node_ready(self) -> bool:
        done = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if done.returncode != 0:
            return False
        conditions = json.loads(done.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _dns_ready(self) -> bool:
        done = self.kubectl(
            "-n", coredns.NAMESPACE, "get", "deployment", "coredns", "-o", "json", check=False
        )
        return (
            done.returncode == 0
            and json.loads(done.stdout).get("status", {}).get("availableReplicas", 0) >= 1
        )

    def _diagnosis(self) -> str:
        parts = []
        for args in (("get", "nodes", "-o", "wide"), ("get", "pods", "-A", "-o", "wide"),
                     ("get", "events", "-A", "--sort-by=.lastTimestamp")):  # fmt: skip
            done = self.kubectl(*args, check=False)
            parts.append(f"$ kubectl {' '.join(args)}\n{done.stdout[-3000:]}{done.stderr[-1000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the node, then the control plane; record what could not be removed."""
        control_plane = self.control_plane
        if self.volumes is not None:
            self.volumes.stop()
            self.volumes = None
        if self.node is not None:
            self.leftovers = self.node.stop(then=control_plane.stop if control_plane else None)
            self.node = None
        elif control_plane is not None:
            control_plane.stop()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
