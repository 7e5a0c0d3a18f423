"""Where the project's scripts put what they install, and the pinned versions."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


class MissingComponentError(RuntimeError):
    """A component the project installs is absent; the message says how to install it."""


@cache
def versions() -> dict[str, str]:
    """The KEY=VALUE pairs of versions.env, the one pinned versions file."""
    pairs: dict[str, str] = {}
    for raw in (ROOT / "versions.env").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def cache_dir() -> Path:
    return Path(os.environ.get("QARUN_CACHE_DIR", ROOT / ".cache"))


def upstream_charts() -> Path:
    """The Strimzi and Flink-operator chart copies (with their CRDs) used as fixtures."""
    default = ROOT.parent / "shared" / "upstream"
    return Path(os.environ.get("QARUN_UPSTREAM_CHARTS", default))


def require(path: Path, what: str, install: str) -> Path:
    if not path.exists():
        raise MissingComponentError(
            f"{what} not found at {path}. Install it with `{install}` "
            "(or `make setup`, which installs everything)."
        )
    return path


def go_tool(name: str) -> Path:
    """A binary built by scripts/install-go-tools.sh, e.g. go_tool('kube-apiserver')."""
    group = {
        "kube-apiserver": "kubernetes",
        "kube-controller-manager": "kubernetes",
        "kube-scheduler": "kubernetes",
        "kubectl": "kubernetes",
        "kubelet": "kubenode",
        "kube-proxy": "kubenode",
        "pause": "kubenode",
    }.get(name, name)
    return require(
        cache_dir() / "bin" / group / name,
        name,
        f"bash scripts/install-go-tools.sh {group}",
    )


def kafka_libs() -> Path:
    return require(
        cache_dir() / "kafka" / "libs", "Kafka broker jars", "bash scripts/install-jars.sh"
    )


def flink_kafka_connector() -> Path:
    version = versions()["FLINK_KAFKA_CONNECTOR_VERSION"]
    return require(
        cache_dir() / "flink-connector-kafka" / f"flink-sql-connector-kafka-{version}.jar",
        "Flink Kafka connector jar",
        "bash scripts/install-jars.sh",
    )


def postgres_bin(name: str) -> Path:
    """PostgreSQL server binaries live in a versioned Debian directory, not on PATH."""
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise MissingComponentError(
            f"PostgreSQL ({name}) is not installed. Install it with "
            "`bash scripts/install-debian.sh` (apt-get install postgresql)."
        )
    return candidates[-1]


def system_bin(name: str, package: str) -> Path:
    for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/usr/bin"]:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MissingComponentError(
        f"{name} is not installed. Install it with `bash scripts/install-debian.sh` "
        f"(apt-get install {package})."
    )
