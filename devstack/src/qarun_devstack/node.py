"""A real Kubernetes node: containerd + runc, CNI, kubelet, kube-proxy and a registry.

Everything runs in the node's network namespace (`nodehost`): containerd (Debian's,
root/state/socket under the node's work dir, runc as the runtime, the CNI bridge with
host-local IPAM, portmap and loopback), a distribution registry on port 5001 serving
the image store that scripts/build-images.sh pushes to (containerd pulls
`localhost:5001/...` from it), kubelet (registered as NODE_NAME with the node IP
10.250.<slot>.2) and kube-proxy in iptables mode. The control plane stays on the
host (`cluster.RealCluster` wires the two together).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qarun_devstack import images, nodehost, paths
from qarun_devstack.nodehost import NodeSlot
from qarun_devstack.process import Service, ServiceError

NODE_NAME = "qarun-node"
POD_CIDR = "10.244.0.0/16"
NODE_POD_SUBNET = "10.244.0.0/24"
CLUSTER_DNS = "10.96.0.10"
CNI_BIN = Path("/usr/lib/cni")
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
PROXY_HEALTHZ_PORT = 10256
SLOT_WORKDIR = "workdir"  # RUN_DIR/slot-N.workdir: where a killed run left its mounts


@dataclass
class Node:
    workdir: Path
    slot: NodeSlot
    kubelet_kubeconfig: Path
    proxy_kubeconfig: Path
    ca_cert: Path
    services: list[Service] = field(default_factory=list)

    @property
    def ip(self) -> str:
        return self.slot.node_ip

    @property
    def registry_push(self) -> str:
        """Where the host pushes to this node's registry (plain HTTP)."""
        return f"{self.ip}:{images.REGISTRY_PORT}"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        """Pulled images and their unpacked layers, kept between runs (one per slot):
        a warm start does not pull the stack's images again."""
        return paths.cache_dir() / "node" / f"containerd-root-{self.slot.index}"

    @property
    def pod_logs(self) -> Path:
        return self.workdir / "pod-logs"

    def _slot_record(self) -> Path:
        return nodehost.RUN_DIR / f"slot-{self.slot.index}.{SLOT_WORKDIR}"

    # --- start --------------------------------------------------------------------

    def start_runtime(self) -> Node:
        """The namespace, registry and containerd: everything before kubelet."""
        if os.geteuid() != 0:
            raise ServiceError(
                "the real node needs root (a network namespace, cgroups, mounts): "
                "run the tests or `make cluster` as root"
            )
        for name in ("pause", "coredns"):
            images.require_image(name)
        for binary, package in (("containerd", "containerd"), ("runc", "runc")):
            paths.system_bin(binary, package)
        paths.require(CNI_BIN / "bridge", "CNI plugins", "bash scripts/install-node.sh")
        self.clean_stale(self.slot)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._slot_record().write_text(str(self.workdir))
        nodehost.save_host_sysctls()
        nodehost.make_cgroup(self.slot)
        nodehost.create_network(self.slot, POD_CIDR)
        self._start_registry()
        self._start_containerd()
        return self

    def _service(self, name: str, argv: list[str | os.PathLike[str]], **env: str) -> Service:
        service = Service(name, self.slot.in_netns(argv), self.workdir / f"{name}.log", env=env)
        self.services.append(service.start())
        return service

    def _start_registry(self) -> None:
        config = self.workdir / "registry.yaml"
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "warn", "accesslog": {"disabled": True}},
                    "storage": {
                        "filesystem": {"rootdirectory": str(images.registry_store())},
                        "maintenance": {"uploadpurging": {"enabled": False}},
                    },
                    "http": {"addr": f"0.0.0.0:{images.REGISTRY_PORT}"},
                }
            )
        )
        registry = self._service(
            "registry",
            [paths.go_tool("registry"), "serve", config],
            OTEL_TRACES_EXPORTER="none",
            OTEL_SDK_DISABLED="true",
        )
        registry.wait_ready(
            lambda: _http_status(f"http://{self.registry_push}/v2/") == 200, 30, "serving /v2/"
        )

    def _start_containerd(self) -> None:
        base = self.workdir / "containerd"
        cni_conf = self.workdir / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-qarun.conflist").write_text(json.dumps(self._cni_config()))
        base.mkdir(parents=True, exist_ok=True)
        config = base / "config.toml"
        config.write_text(self._containerd_config(base, cni_conf))
        containerd = self._service("containerd", ["containerd", "--config", config])
        # Its shims (and so every container) inherit this cgroup: stop can find them all.
        containerd.wait_ready(self.containerd_socket.exists, 30, "listening")
        assert containerd.proc is not None
        nodehost.join_cgroup(self.slot, "runtime", containerd.proc.pid)
        containerd.wait_ready(
            lambda: self._ctr("version", check=False).returncode == 0, 30, "answering ctr"
        )
        self._forget_rebuilt_images()

    def _forget_rebuilt_images(self) -> None:
        """Images kept from an earlier run whose tag now names another build: forget
        them, so that pods (pull policy IfNotPresent) get what `make images` built."""
        listing = self._ctr("images", "list", check=False).stdout.splitlines()[1:]
        for line in listing:
            ref, _, digest, *_ = line.split()
            prefix = f"{images.REGISTRY}/qarun/"
            if not ref.startswith(prefix) or "@" in ref or ":" not in ref[len(prefix) :]:
                continue  # not ours, or a digest reference (it cannot go stale)
            name, tag = ref[len(prefix) :].rsplit(":", 1)
            pushed = images.pushed_digest(name, tag)
            if pushed != digest:
                self._ctr("images", "remove", ref, check=False)

    def _cni_config(self) -> dict[str, object]:
        return {
            "cniVersion": "0.4.0",
            "name": self.slot.name,  # names CNI's cache files: stop removes them by it
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": NODE_POD_SUBNET}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def _containerd_config(self, base: Path, cni_conf: Path) -> str:
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        mirror = f'{cri[:-1]}.registry.mirrors."{images.REGISTRY}"]'
        return f"""\
version = 2
root = "{self.containerd_root}"
state = "{base / "state"}"
# Plugins that would write to system paths (/opt/containerd) or need other filesystems.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.containerd_socket}"
[metrics]
  address = ""
{cri}
  sandbox_image = "{images.image_ref("pause")}"
  # This host denies lowering oom_score_adj: runc fails the sandbox without this.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not the host's /var/run/netns.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{paths.system_bin("runc", "runc")}"
        Root = "{base / "runc"}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
  {mirror}
    endpoint = ["http://127.0.0.1:{images.REGISTRY_PORT}"]
"""

    def start_kubelet(self, server: str) -> None:
        root = self.workdir / "kubelet"
        root.mkdir(parents=True, exist_ok=True)
        resolv = self.workdir / "resolv.conf"
        # No upstream servers: pods resolve cluster names only (CoreDNS forwards nothing).
        resolv.write_text("options ndots:5\n")
        config = self.workdir / "kubelet.yaml"
        config.write_text(json.dumps(self._kubelet_config(resolv)))
        kubelet = self._service(
            "kubelet",
            [
                paths.go_tool("kubelet"),
                f"--config={config}",
                f"--kubeconfig={self.kubelet_kubeconfig}",
                f"--root-dir={root}",
                f"--cert-dir={root / 'pki'}",
                f"--node-ip={self.ip}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ],
        )
        kubelet.wait_ready(
            lambda: _http_status(f"http://{self.ip}:{KUBELET_HEALTHZ_PORT}/healthz") == 200,
            60,
            f"healthy (server {server})",
        )

    def _kubelet_config(self, resolv: Path) -> dict[str, object]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # This host mounts cgroup v1 (with a v2 mount beside it); kubelet >= 1.35
            # refuses v1 unless told, and the host has no systemd to drive cgroups.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.slot.name}",
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": self.ip,
            "port": KUBELET_PORT,
            "readOnlyPort": 0,
            "healthzBindAddress": self.ip,
            "healthzPort": KUBELET_HEALTHZ_PORT,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.ca_cert)},
            },
            "authorization": {"mode": "Webhook"},
            "clusterDomain": "cluster.local",
            "clusterDNS": [CLUSTER_DNS],
            "resolvConf": str(resolv),
            "podLogsDir": str(self.pod_logs),
            "failSwapOn": False,
            "serializeImagePulls": False,
            # A shared build machine: no evictions or image GC for disk it does not own.
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                             "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "enforceNodeAllocatable": ["pods"],
        }  # fmt: skip

    def start_kube_proxy(self) -> None:
        config = self.workdir / "kube-proxy.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "clientConnection": {"kubeconfig": str(self.proxy_kubeconfig)},
                    "mode": "iptables",
                    "clusterCIDR": POD_CIDR,
                    "hostnameOverride": NODE_NAME,
                    "healthzBindAddress": f"{self.ip}:{PROXY_HEALTHZ_PORT}",
                    "metricsBindAddress": "127.0.0.1:10249",
                    "nodePortAddresses": [f"{self.ip}/32"],
                    # Host-wide conntrack limits stay as the host has them.
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                }
            )
        )
        proxy = self._service("kube-proxy", [paths.go_tool("kube-proxy"), f"--config={config}"])
        proxy.wait_ready(
            lambda: _http_status(f"http://{self.ip}:{PROXY_HEALTHZ_PORT}/healthz") == 200,
            60,
            "healthy (programming Services)",
        )

    # --- stop ---------------------------------------------------------------------

    def stop(self, then: Callable[[], None] | None = None) -> list[str]:
        """Stop everything and remove it from the host; returns what could not be removed.
        `then` runs once the node's services are stopped, before the clean-up kills what
        is left in the slot's cgroups (the control plane's graceful stop)."""
        by_name = {s.name: s for s in self.services}
        for name in ("kubelet", "kube-proxy"):
            if name in by_name:
                by_name[name].stop()
        if "containerd" in by_name and by_name["containerd"].alive():
            self._remove_containers()
        for service in reversed(self.services):
            service.stop()
        self.services.clear()
        if then is not None:
            then()
        self.clean_stale(self.slot, self.workdir)
        left = nodehost.leftovers(self.slot, self.workdir)
        nodehost.restore_host_sysctls(self.slot)
        os.close(self.slot.lock_fd)
        return left

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]
        done = subprocess.run(
            self.slot.in_netns(argv), capture_output=True, text=True, timeout=30, check=False
        )
        if check and done.returncode != 0:
            raise ServiceError(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
        return done

    def _remove_containers(self) -> None:
        """Delete every task, so that each shim exits and removes its socket file."""
        ids = self._ctr("containers", "list", "--quiet", check=False).stdout.split()
        for cid in ids:
            self._ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=False)
        for cid in ids:
            self._ctr("tasks", "delete", "--force", cid, check=False)
            self._ctr("containers", "delete", cid, check=False)

    @staticmethod
    def clean_stale(slot: NodeSlot, workdir: Path | None = None) -> None:
        """Remove what a node in this slot left on the host (this one, or a killed run)."""
        record = nodehost.RUN_DIR / f"slot-{slot.index}.{SLOT_WORKDIR}"
        roots = [workdir] if workdir is not None else []
        if record.exists():
            roots.append(Path(record.read_text().strip()))
        nodehost.kill_cgroup_processes(slot)
        nodehost.unmount_all(*roots)
        nodehost.delete_network(slot)
        nodehost.remove_cgroups(slot)
        for root in roots:
            nodehost.remove_host_files(slot, root)
        if record.exists() and workdir is None:  # a killed run's files: nothing runs there
            stale = Path(record.read_text().strip())
            shutil.rmtree(stale.parent if stale.name == "node" else stale, ignore_errors=True)
        record.unlink(missing_ok=True)


def _http_status(url: str) -> int:
    with contextlib.closing(urllib.request.urlopen(url, timeout=2)) as response:  # noqa: S310
        return int(response.status)
