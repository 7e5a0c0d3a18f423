"""Fixtures for the operator tests: the QARun CRD on the real API server, the chart's RBAC,
and the operator itself running in-process (kopf.testing.KopfRunner) as the chart's
ServiceAccount, so every acceptance test also proves that the RBAC is enough."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from optools import (
    CRD_FILE,
    OPERATOR_NAMESPACE,
    SummaryAPI,
    ensure_namespace,
    render_operator_chart,
    service_account_kubeconfig,
    start_summary_api,
)

from qarun_devstack.kafka import KafkaBroker
from qarun_devstack.kube import KubeCluster
from qarun_devstack.postgres import Postgres
from qarun_devstack.redis import Redis


@pytest.fixture(scope="session")
def qarun_crd(kube: KubeCluster) -> KubeCluster:
    kube.kubectl("apply", "--server-side", "-f", str(CRD_FILE))
    kube.kubectl("wait", "--for=condition=Established", "crd/qaruns.qarun.io", "--timeout=60s")
    # The API server publishes the CRD's OpenAPI schema (what `kubectl explain` and
    # server-side validation messages read) a moment after it is established.
    deadline = time.monotonic() + 60
    while kube.kubectl("explain", "qarun", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the QARun schema was not published in 60 s"
        time.sleep(0.5)
    return kube


@pytest.fixture(scope="session")
def operator_rbac(qarun_crd: KubeCluster) -> KubeCluster:
    """The chart's ServiceAccount and RBAC, applied as rendered."""
    kube = qarun_crd
    ensure_namespace(kube, OPERATOR_NAMESPACE)
    rendered = render_operator_chart(
        kube,
        "--show-only", "templates/controller/serviceaccount.yaml",
        "--show-only", "templates/rbac/clusterrole.yaml",
    )  # fmt: skip
    kube.kubectl("apply", "--server-side", "-f", "-", input=rendered)
    return kube


@pytest.fixture(scope="session")
def summary_api(
    kafka: KafkaBroker,
    postgres: Postgres,
    redis: Redis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SummaryAPI]:
    api = start_summary_api(
        kafka, postgres, redis, tmp_path_factory.mktemp("summary-api") / "api.log"
    )
    yield api
    api.service.stop()


@pytest.fixture(scope="session")
def operator(
    operator_rbac: KubeCluster,
    summary_api: SummaryAPI,
    flink_session_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """The operator in-process, authenticated as the chart's ServiceAccount."""
    import kopf.testing  # noqa: PLC0415 - only the tests that run the operator need it

    kubeconfig = service_account_kubeconfig(
        operator_rbac, tmp_path_factory.mktemp("operator") / "kubeconfig"
    )
    env = {
        "KUBECONFIG": str(kubeconfig),
        "QARUN_OPERATOR__SUMMARY_URL": summary_api.url,
        "QARUN_OPERATOR__STATUS_INTERVAL_SECONDS": "1",
        # Standalone session clusters' REST API: the pods on kwok run nothing, so every
        # run's JobManager is the flink_session fixture's (started by the tests that
        # submit a job).
        "QARUN_OPERATOR__FLINK_REST_URL": f"http://127.0.0.1:{flink_session_port}",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    from qarun_operator import handlers  # noqa: PLC0415 - after the environment is set

    handlers._config.cache_clear()
    handlers._kube.cache_clear()
    args = ["run", "--standalone", "--all-namespaces", "-m", "qarun_operator.handlers"]
    try:
        with kopf.testing.KopfRunner(args, timeout=60) as runner:
            yield runner
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        handlers._config.cache_clear()
        handlers._kube.cache_clear()
    assert runner.exception is None, runner.exception
    assert runner.exit_code == 0, runner.output[-3000:]
