"""The FlinkSessionJob sample and the image's Dockerfile agree with the job."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from qarun_devstack.paths import ROOT, upstream_charts, versions
from qarun_flink.params import parse

DEPLOY = ROOT / "flink" / "deploy" / "flinksessionjob.yaml"


def crd_schema(kind_file: str) -> dict[str, object]:
    crd = yaml.safe_load(
        (upstream_charts() / "flink-kubernetes-operator" / "crds" / kind_file).read_text()
    )
    [version] = [v for v in crd["spec"]["versions"] if v["served"]]
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def test_session_job_sample_is_valid_for_the_operator_crd() -> None:
    manifest = yaml.safe_load(DEPLOY.read_text())
    jsonschema.validate(manifest, crd_schema("flinksessionjobs.flink.apache.org-v1.yml"))
    job = manifest["spec"]["job"]
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    # The Flink operator uploads its empty jar when there is no jarURI; a local:// one
    # is refused by its validator (allowed schemes: https by default).
    assert "jarURI" not in job


def test_session_job_arguments_are_the_job_parameters() -> None:
    args = yaml.safe_load(DEPLOY.read_text())["spec"]["job"]["args"]
    assert args[:2] == ["-pym", "qarun_flink.job"]
    params = parse(args[2:], {})
    assert (params.run, params.scorer, params.threshold) == ("yahoo-demo", "lexical", 0.75)
    assert "API_KEY" not in " ".join(args)


def test_dockerfile_uses_the_pinned_versions() -> None:
    dockerfile = (ROOT / "flink" / "Dockerfile").read_text()
    pinned = versions()
    assert f"ARG FLINK_VERSION={pinned['FLINK_VERSION']}" in dockerfile
    assert f"FLINK_KAFKA_CONNECTOR_VERSION={pinned['FLINK_KAFKA_CONNECTOR_VERSION']}" in dockerfile
    assert f"UV_VERSION={pinned['UV_VERSION']}" in dockerfile
    assert Path(ROOT / "flink" / "pyproject.toml").read_text().count("torch") == 0
