"""A component that was never installed fails loudly, naming the command that installs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from qarun_devstack import paths
from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KubeCluster
from qarun_devstack.paths import MissingComponentError


def test_missing_go_tool_names_its_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QARUN_CACHE_DIR", str(tmp_path))
    with pytest.raises(MissingComponentError, match=r"scripts/install-go-tools\.sh kubernetes"):
        paths.go_tool("kube-apiserver")


def test_missing_kafka_jars_fail_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QARUN_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingComponentError, match=r"scripts/install-jars\.sh"):
        KafkaBroker(tmp_path / "kafka").start()
    assert not (tmp_path / "kafka").exists()


def test_missing_upstream_charts_say_which_variable_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QARUN_UPSTREAM_CHARTS", str(tmp_path / "nowhere"))
    with pytest.raises(MissingComponentError, match="set QARUN_UPSTREAM_CHARTS"):
        KubeCluster(tmp_path / "kube").apply_upstream_crds()
