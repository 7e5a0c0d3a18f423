"""What the real node sets up on the host, and takes down again.

The node (containerd, kubelet, kube-proxy, the registry, every pod) lives in a network
namespace of its own, joined to the host by one veth pair with addresses from
10.250.<slot>.0/30, a range only the dev stack uses. So kube-proxy's and CNI's iptables
chains, the pod bridge and the pods' routes never touch the host's tables, and deleting
the namespace removes them all. The namespace has no default route and the host does
not forward, so pods reach nothing but the node, its pods and Services, and the API
server on the host end of the pair.

A slot (0..31) is claimed with a lock file, so concurrent test runs get separate nodes.
A run killed hard leaves its slot's leftovers: the next claim of that slot removes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qarun_devstack.process import ServiceError, run

RUN_DIR = Path("/run/qarun-node")
SLOTS = 32
CGROUP_ROOT = Path("/sys/fs/cgroup")
CNI_CACHE = Path("/var/lib/cni/results")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
SHIM_SOCKETS = Path("/run/containerd/s")
# Host-wide kernel settings kubelet sets at start (for every node it runs); put back
# when the last node on this host stops.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
SYSCTL_SAVE = RUN_DIR / "host-sysctls"


@dataclass
class NodeSlot:
    index: int
    lock_fd: int

    @property
    def name(self) -> str:
        return f"qarun-node-{self.index}"

    @property
    def netns(self) -> Path:
        return RUN_DIR / f"netns-{self.index}"

    @property
    def host_if(self) -> str:
        return f"qrn{self.index}h"

    @property
    def node_if(self) -> str:
        return f"qrn{self.index}n"

    @property
    def host_ip(self) -> str:
        """The host's end of the pair: the API server listens here."""
        return f"10.250.{self.index}.1"

    @property
    def node_ip(self) -> str:
        """The node's address (kubelet's node IP, the registry's push address)."""
        return f"10.250.{self.index}.2"

    def in_netns(self, argv: Sequence[str | os.PathLike[str]]) -> list[str | os.PathLike[str]]:
        """argv run inside the node's network namespace (same mounts as the host)."""
        return ["nsenter", f"--net={self.netns}", "--", *argv]

    def cgroups(self) -> list[Path]:
        """This node's cgroup (kubelet's cgroupRoot) in every mounted hierarchy."""
        return [h / self.name for h in _hierarchies()]


def claim_slot() -> NodeSlot:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    for index in range(SLOTS):
        fd = os.open(RUN_DIR / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return NodeSlot(index, fd)
    raise ServiceError(f"all {SLOTS} node slots are in use (lock files in {RUN_DIR})")


def _hierarchies() -> list[Path]:
    return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and (p / "cgroup.procs").exists())


def make_cgroup(slot: NodeSlot, sub: str = "") -> None:
    """Create slot's cgroup (or a child) in every hierarchy; cpuset needs its cpus and
    mems copied from the parent before a process may join."""
    for base in slot.cgroups():
        path = base / sub if sub else base
        path.mkdir(parents=True, exist_ok=True)
        if (path / "cpuset.cpus").exists():
            for key in ("cpuset.cpus", "cpuset.mems"):
                if not (path / key).read_text().strip():
                    (path / key).write_text((path.parent / key).read_text())


def join_cgroup(slot: NodeSlot, sub: str, pid: int) -> None:
    """Put pid (and so every child it forks later: containerd's shims) in slot/sub."""
    make_cgroup(slot, sub)
    for base in slot.cgroups():
        (base / sub / "cgroup.procs").write_text(str(pid))


def cgroup_pids(slot: NodeSlot) -> set[int]:
    found: set[int] = set()
    for base in slot.cgroups():
        if base.exists():
            for procs in base.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
    return found


def kill_cgroup_processes(slot: NodeSlot, timeout: float = 20) -> None:
    """SIGKILL every process left in the node's cgroups (containers, pause, shims)."""
    deadline = time.monotonic() + timeout
    while pids := cgroup_pids(slot):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise ServiceError(f"processes {sorted(pids)} outlived the node {slot.name}")
        time.sleep(0.1)


def remove_cgroups(slot: NodeSlot) -> None:
    for base in slot.cgroups():
        if not base.exists():
            continue
        for path in sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


def mounts_under(*roots: Path) -> list[Path]:
    """Mount points under any of roots, deepest first (the order to unmount them in)."""
    found: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(line.split()[4].replace("\\040", " "))
        if any(point == r or r in point.parents for r in roots):
            found.append(point)
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(*roots: Path) -> None:
    for _ in range(3):  # a mount can hide another at the same point
        points = mounts_under(*roots)
        if not points:
            return
        for point in points:
            with contextlib.suppress(ServiceError):
                run(["umount", "--lazy", point], f"unmounting {point}")
    if left := mounts_under(*roots):
        raise ServiceError(f"could not unmount {[str(p) for p in left]}")


def create_network(slot: NodeSlot, pod_cidr: str) -> None:
    slot.netns.touch()
    run(["unshare", f"--net={slot.netns}", "true"], f"creating the network namespace {slot.name}")
    ns = slot.in_netns
    run(
        ns(["ip", "link", "add", slot.node_if, "type", "veth",
            "peer", "name", slot.host_if, "netns", str(os.getpid())]),
        "creating the node's veth pair",
    )  # fmt: skip
    run(["ip", "addr", "add", f"{slot.host_ip}/30", "dev", slot.host_if], "host veth address")
    run(["ip", "link", "set", slot.host_if, "up"], "host veth up")
    for argv in (
        ["ip", "addr", "add", f"{slot.node_ip}/30", "dev", slot.node_if],
        ["ip", "link", "set", slot.node_if, "up"],
        ["ip", "link", "set", "lo", "up"],
        # Per namespace: pods' traffic to Services is routed (DNAT) through the node.
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        ["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"],
        # Pods reach the API server on the host as the node: the host has no route to
        # the pod range (and must not get one).
        ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", pod_cidr,
         "-o", slot.node_if, "-j", "MASQUERADE"],
    ):  # fmt: skip
        run(ns(argv), f"setting up the node network: {' '.join(argv)}")


def delete_network(slot: NodeSlot) -> None:
    if slot.netns.exists():
        with contextlib.suppress(ServiceError):
            run(["umount", slot.netns], f"releasing {slot.netns}")
        slot.netns.unlink(missing_ok=True)
    # The pair goes with the namespace once its last process is gone.
    deadline = time.monotonic() + 10
    while Path(f"/sys/class/net/{slot.host_if}").exists():
        if time.monotonic() > deadline:
            run(["ip", "link", "del", slot.host_if], f"deleting {slot.host_if}")
            break
        time.sleep(0.1)


def remove_host_files(slot: NodeSlot, workdir: Path) -> None:
    """What containerd and kubelet of the node in workdir left in host paths: CNI's
    result cache (each names the sandbox's netns, under workdir), the shims' sockets
    (named by a hash of containerd's socket, namespace and sandbox id) and kubelet's
    /var/log/containers links."""
    if CNI_CACHE.exists():
        for cached in CNI_CACHE.iterdir():
            with contextlib.suppress(OSError, ValueError):
                text = cached.read_text()
                if str(workdir) not in text and not cached.name.startswith(f"{slot.name}-"):
                    continue
                sandbox = json.loads(text).get("containerId", "")
                socket = workdir / "containerd" / "containerd.sock"
                digest = hashlib.sha256(f"{socket}/k8s.io/{sandbox}".encode()).hexdigest()
                (SHIM_SOCKETS / digest).unlink(missing_ok=True)
                cached.unlink(missing_ok=True)
    for shared in (SHIM_SOCKETS, SHIM_SOCKETS.parent):
        with contextlib.suppress(OSError):  # still used by another containerd: keep it
            shared.rmdir()
    if CONTAINER_LOG_LINKS.exists():
        for link in CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and str(os.readlink(link)).startswith(str(workdir)):
                link.unlink(missing_ok=True)


def save_host_sysctls() -> None:
    if not SYSCTL_SAVE.exists():
        lines = [f"{k}={(Path('/proc/sys') / k).read_text().strip()}" for k in KUBELET_SYSCTLS]
        SYSCTL_SAVE.write_text("\n".join(lines) + "\n")


def restore_host_sysctls(slot: NodeSlot) -> None:
    """Put kubelet's host-wide settings back, unless another node still runs here."""
    for lock in RUN_DIR.glob("slot-*.lock"):
        if lock.name == f"slot-{slot.index}.lock":
            continue
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # that node's kubelet wants them as they are
        finally:
            os.close(fd)
    if SYSCTL_SAVE.exists():
        for line in SYSCTL_SAVE.read_text().splitlines():
            key, _, value = line.partition("=")
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(value)
        SYSCTL_SAVE.unlink()


def leftovers(slot: NodeSlot, workdir: Path) -> list[str]:
    """What of this node is still on the host (empty after a clean stop)."""
    found = [f"process {pid}" for pid in sorted(cgroup_pids(slot))]
    found += [f"mount {p}" for p in mounts_under(workdir)]
    # The node's chains live in its namespace; none may have reached the host's tables.
    for table in ("nat", "filter"):
        rules = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=False
        ).stdout
        found += [f"host iptables {line}" for line in rules.splitlines()
                  if line.startswith(":") and line[1:].startswith(("KUBE-", "CNI-"))]  # fmt: skip
    found += [f"cgroup {p}" for p in slot.cgroups() if p.exists()]
    if Path(f"/sys/class/net/{slot.host_if}").exists():
        found.append(f"interface {slot.host_if}")
    if slot.netns.exists():
        found.append(f"network namespace {slot.netns}")
    return found
