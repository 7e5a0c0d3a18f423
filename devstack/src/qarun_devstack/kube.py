"""A real Kubernetes control plane without a container runtime.

etcd + kube-apiserver (RBAC on) + kube-controller-manager (Deployments get ReplicaSets,
owner references get garbage-collected) + kube-scheduler + kwok, which plays the
kubelet of a fake node so that scheduled pods reach Running. Everything is built
from Go modules by scripts/install-go-tools.sh.

The same control plane serves the real node (`qarun_devstack.cluster`): there it
listens on an address pods can reach instead of loopback, has a real CA (`pki`) and
no kwok.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from qarun_core.ports import free_port
from qarun_devstack import paths
from qarun_devstack.pki import ClusterPki
from qarun_devstack.process import Service, ServiceError, run

ADMIN_USER = "qarun-admin"
KWOK_NODE = "kwok-node-0"

NODE_MANIFEST = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": KWOK_NODE,
        "annotations": {"kwok.x-k8s.io/node": "fake"},
        "labels": {
            "type": "kwok",
            "kubernetes.io/hostname": KWOK_NODE,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        },
    },
    "status": {
        "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "200"},
        "capacity": {"cpu": "32", "memory": "256Gi", "pods": "200"},
    },
}


@dataclass
class KubeCluster:
    workdir: Path
    with_nodes: bool = True
    # Where the API server listens and what it advertises (the `kubernetes` Service's
    # endpoint); loopback unless pods must reach it.
    address: str = "127.0.0.1"
    kwok: bool = True
    # A real CA: pods verify the API server, and it authenticates to kubelets.
    pki: ClusterPki | None = None
    # Further static-token identities as (user, groups): the real node's kubelet and
    # kube-proxy. Their tokens are in `tokens`.
    identities: list[tuple[str, str]] = field(default_factory=list)
    upstream_crds: bool = True
    tokens: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    services: list[Service] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        """Environment for kubectl/helm subprocesses: this cluster, the built tools first."""
        bins = [str(paths.go_tool(t).parent) for t in ("kubectl", "helm")]
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": os.pathsep.join([*bins, os.environ.get("PATH", "")]),
            "HELM_CACHE_HOME": str(self.workdir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.workdir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.workdir / "helm" / "data"),
        }

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("kubectl", args, input, check, timeout)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return self._tool("helm", args, input, check, timeout)

    def _tool(
        self, name: str, args: tuple[str, ...], input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(paths.go_tool(name)), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise ServiceError(
                f"{name} {' '.join(args)} failed (exit {done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
        return done

    # --- start-up -----------------------------------------------------------------

    def start(self) -> KubeCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._write_credentials()
            self._start_etcd()
            self._start_apiserver()
            self._start_controllers()
            if self.upstream_crds:
                self.apply_upstream_crds()
            if self.with_nodes and self.kwok:
                self._start_kwok()
        except BaseException:
            self.stop()  # a half-started control plane must not outlive the failure
            raise
        return self

    def _write_credentials(self) -> None:
        key = self.workdir / "sa.key"
        run(["openssl", "genrsa", "-out", key, "2048"], "generating the service account key")
        run(
            ["openssl", "rsa", "-in", key, "-pubout", "-out", self.workdir / "sa.pub"],
            "extracting the service account public key",
        )
        # An admin in system:masters, authenticated by a static token: RBAC stays on for
        # everyone else, so tests can impersonate service accounts and check the rules.
        lines = [f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"']
        for user, groups in self.identities:
            self.tokens[user] = secrets.token_hex(16)
            lines.append(f'{self.tokens[user]},{user},{user},"{groups}"')
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")
        self.write_kubeconfig(self.kubeconfig, ADMIN_USER, self.token)

    def write_kubeconfig(self, path: Path, user: str, token: str) -> Path:
        """A kubeconfig for `user` (authenticated by its static token)."""
        if self.pki is None:
            cluster: dict[str, object] = {"server": self.server, "insecure-skip-tls-verify": True}
        else:
            ca = base64.b64encode(self.pki.ca_cert.read_bytes()).decode()
            cluster = {"server": self.server, "certificate-authority-data": ca}
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "qarun-test", "cluster": cluster}],
                    "users": [{"name": user, "user": {"token": token}}],
                    "contexts": [
                        {"name": "qarun-test", "context": {"cluster": "qarun-test", "user": user}}
                    ],
                    "current-context": "qarun-test",
                },
                indent=2,
            )
        )
        path.chmod(0o600)
        return path

    def _service(self, name: str, argv: list[str | Path]) -> Service:
        service = Service(name, argv, self.workdir / f"{name}.log").start()
        self.services.append(service)
        return service

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        etcd = self._service(
            "etcd",
            [
                paths.go_tool("etcd"),
                "--data-dir", self.workdir / "etcd",
                "--listen-client-urls", client,
                "--advertise-client-urls", client,
                "--listen-peer-urls", peer,
                "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"default={peer}",
                "--unsafe-no-fsync",
                "--log-level", "warn",
            ],
        )  # fmt: skip
        etcd.wait_ready(lambda: _http_ok(f"{client}/health"), 30, "healthy")

    def _start_apiserver(self) -> None:
        if self.pki is None:
            # No endpoints for the kubernetes Service: loopback is not allowed there.
            security = ["--endpoint-reconciler-type=none", "--authorization-mode=RBAC"]
        else:
            pki = self.pki
            security = [
                f"--tls-cert-file={pki.cert('apiserver')}",
                f"--tls-private-key-file={pki.key('apiserver')}",
                f"--client-ca-file={pki.ca_cert}",
                f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
                f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
                # Kubelets act only on their own node and its pods.
                "--authorization-mode=Node,RBAC",
                # Reach the kubelet at its node IP: looking its name up would ask the
                # machine's DNS server, which is not the dev stack's.
                "--kubelet-preferred-address-types=InternalIP",
            ]
        apiserver = self._service(
            "kube-apiserver",
            [
                paths.go_tool("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                *security,
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        apiserver.wait_ready(
            lambda: _http_ok(f"{self.server}/readyz", self.token), 120, "ready (/readyz)"
        )

    def _start_controllers(self) -> None:
        kubeconfig = f"--kubeconfig={self.kubeconfig}"
        root_ca = [] if self.pki is None else [f"--root-ca-file={self.pki.ca_cert}"]
        manager = self._service(
            "kube-controller-manager",
            [
                paths.go_tool("kube-controller-manager"),
                kubeconfig,
                "--controllers=*",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={self.workdir / 'sa.key'}",
                "--use-service-account-credentials=false",
                "--concurrent-deployment-syncs=10",
                "--concurrent-gc-syncs=10",
                *root_ca,
                "--v=1",
            ],
        )
        # The service account controller creating `default` in `default` proves that the
        # controller-manager is connected and running its controllers.
        manager.wait_ready(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            90,
            "running controllers (no default ServiceAccount yet)",
        )
        if self.with_nodes:
            self._service(
                "kube-scheduler",
                [
                    paths.go_tool("kube-scheduler"),
                    kubeconfig,
                    "--leader-elect=false",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={free_port()}",
                ],
            )

    def _start_kwok(self) -> None:
        kwok = self._service(
            "kwok",
            [
                paths.go_tool("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={paths.go_tool('kwok').parent / 'stages.yaml'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-ip=127.0.0.1",
                "--cidr=10.244.0.0/16",
                "--server-address=127.0.0.1:0",
            ],
        )
        self.kubectl("apply", "-f", "-", input=json.dumps(NODE_MANIFEST))
        kwok.wait_ready(self._node_ready, 60, f"managing node {KWOK_NODE} (node not Ready)")

    def _node_ready(self) -> bool:
        done = self.kubectl("get", "node", KWOK_NODE, "-o", "json", check=False)
        if done.returncode != 0:
            return False
        conditions = json.loads(done.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def apply_upstream_crds(self) -> None:
        """The Strimzi and Flink-operator CRDs, as the operator's children need them."""
        upstream = paths.upstream_charts()
        crd_dirs = [
            upstream / "strimzi-kafka-operator" / "crds",
            upstream / "flink-kubernetes-operator" / "crds",
        ]
        for crds in crd_dirs:
            paths.require(
                crds,
                "upstream operator CRDs",
                "set QARUN_UPSTREAM_CHARTS to the folder holding the Strimzi and "
                "Flink-operator charts (default ../shared/upstream)",
            )
            self.kubectl("apply", "--server-side", "-f", str(crds))
        self._wait_established()

    def _wait_established(self, timeout: float = 60) -> None:
        """Wait until every CRD is served. `kubectl wait` fails at once, instead of
        waiting, on a CRD whose status has no conditions yet (".status.conditions
        accessor error", seen in CI on a slow host): ask again until the deadline."""
        wait = ("wait", "--for=condition=Established", "crd", "--all", f"--timeout={timeout:.0f}s")
        deadline = time.monotonic() + timeout
        while (done := self.kubectl(*wait, check=False)).returncode != 0:
            if "accessor error" not in done.stderr or time.monotonic() > deadline:
                raise ServiceError(f"kubectl {' '.join(wait)} failed:\n{done.stderr[-4000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()


def _http_ok(url: str, token: str | None = None) -> bool:
    request = urllib.request.Request(url)  # noqa: S310 - loopback URLs we built
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test apiserver's self-signed serving cert
    with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
        return bool(response.status == 200)
