"""The configuration contract: from the spec model alone, the env every component gets,
and each component's own settings object accepting exactly that."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from qarun_core import plan as p
from qarun_core.env_contract import (
    DELIMITER,
    FLINK_SECTIONS,
    PREFIX,
    ROLE_SECTIONS,
    env_name,
)
from qarun_core.spec import QARunSpec, SecretKeyRef
from qarun_flink.params import JobParams, ParamError, parse
from qarun_operator import render
from qarun_operator.config import OperatorConfig
from qarun_workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OWNER = render.Owner(name="demo", uid="1234")
SECRET_VALUE = "secret-value-from-a-secret"
# Every section away from its defaults, so that a value lost on the way shows.
SPEC = QARunSpec.model_validate(
    {
        "dataset": {"source": "https://example.org/q.csv", "format": "csv", "limit": 900},
        "traffic": {"distribution": "bursty", "ratePerSecond": 12.5, "total": 800,
                    "burst": {"factor": 3, "everySeconds": 20, "lengthSeconds": 4}},
        "llm": {"model": "m", "baseURL": "https://llm.example.org/v1", "maxConcurrency": 64,
                "requestsPerMinute": 600, "tokensPerMinute": 90000, "timeoutSeconds": 12.5,
                "maxTokens": 128, "apiKeySecretRef": {"name": "llm", "key": "k"},
                "pricing": {"promptUSDPerMillion": 0.15, "completionUSDPerMillion": 0.6}},
        "retry": {"maxAttempts": 5, "overload": {"baseDelaySeconds": 3, "maxDelaySeconds": 120},
                  "quota": {"delaySeconds": 90, "maxWaitSeconds": 7200}},
        "scoring": {"method": "judge", "threshold": 0.6, "maxRegenerations": 2,
                    "judge": {"model": "judge-m"}},
        "budget": {"maxTokens": 100000, "maxCostUSD": 2.5},
        "kafka": {"bootstrapServers": "kafka.example.org:9092", "partitions": 4,
                  "minInSyncReplicas": 1, "retentionHours": 24},
        "flink": {"parallelism": 3, "checkpointIntervalSeconds": 15, "taskManagers": 2},
        "storage": {"redisURL": "redis://redis.example.org:6379/2", "cacheTTLSeconds": 600},
    }
)  # fmt: skip


def spec_fields(section: BaseModel) -> dict[str, Any]:
    """A section as the spec declares it: no Secret references, only the spec's fields."""
    spec_type = next(t for t in type(section).__mro__ if t.__module__.startswith("qarun_core"))
    fields = spec_type.model_fields
    skip = {n for n, f in fields.items() if SecretKeyRef.__name__ in str(f.annotation)}
    values = {name: getattr(section, name) for name in set(fields) - skip}
    return {n: spec_fields(v) if isinstance(v, BaseModel) else v for n, v in values.items()}


def field_exists(model: type[BaseModel], path: list[str]) -> bool:
    name, *rest = path
    if name not in model.model_fields:
        return False
    kind = model.model_fields[name].annotation
    if not rest:
        return True
    return isinstance(kind, type) and issubclass(kind, BaseModel) and field_exists(kind, rest)


def settings_from(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A worker's settings from exactly `env`, as its process would read them."""
    for key in [k for k in __import__("os").environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def with_secret_values(component: p.ComponentPlan) -> dict[str, str]:
    return dict(component.env) | {s.env: SECRET_VALUE for s in component.secret_env}


@pytest.mark.parametrize("role", sorted(ROLE_SECTIONS))
def test_each_role_reads_back_exactly_its_sections(
    role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = p.plan("demo", "ns", SPEC)
    component = planned.component(role)
    env = with_secret_values(component)
    for key in env:  # no variable the settings would silently ignore
        assert field_exists(Settings, key.removeprefix(PREFIX).lower().split(DELIMITER)), key
    settings = settings_from(env, monkeypatch)
    resolved = p.with_endpoints(SPEC, p.Endpoints())
    for section in ROLE_SECTIONS[role]:
        assert spec_fields(getattr(settings, section)) == spec_fields(getattr(resolved, section))
    assert settings.run == "demo"
    assert settings.topics.all() == [t.name for t in planned.topics]
    secrets = {s.env for s in component.secret_env}
    assert (env_name("llm", "api_key") in secrets) == (role == p.LLM_WORKER)
    if role == p.LLM_WORKER:
        assert settings.llm.api_key.get_secret_value() == SECRET_VALUE


def test_the_flink_job_reads_back_exactly_its_sections() -> None:
    planned = p.plan("demo", "ns", SPEC)
    params = parse(planned.flink.args, {})
    resolved = p.with_endpoints(SPEC, p.Endpoints())
    for section in FLINK_SECTIONS:
        assert spec_fields(getattr(params, section)) == spec_fields(getattr(resolved, section))
    assert (params.scorer, params.threshold, params.max_attempts) == ("judge", 0.6, 3)
    assert (params.llm_base_url, params.llm_model) == ("https://llm.example.org/v1", "judge-m")
    assert [s.env for s in planned.flink.secret_env] == [env_name("scoring", "judge", "api_key")]


def test_the_operators_manifests_carry_the_same_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    planned = p.plan("demo", "ns", SPEC)
    manifests = render.manifests(planned, OWNER, OperatorConfig())
    workloads = [m for m in manifests if m["kind"] in ("Deployment", "Job")]
    assert len(workloads) == len(planned.components)
    for manifest in workloads:
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        env = {
            e["name"]: e.get("value", SECRET_VALUE) for e in container["env"]
        }  # a secretKeyRef's value comes from the Secret
        role = manifest["metadata"]["labels"]["qarun.io/component"]
        assert env == with_secret_values(planned.component(role))
        settings = settings_from(env, monkeypatch)
        assert settings.retry.overload.base_delay_seconds == 3
    session_job = next(m for m in manifests if m["kind"] == "FlinkSessionJob")
    args = session_job["spec"]["job"]["args"]
    assert parse(args[2:], {}) == parse(planned.flink.args, {})
    assert SECRET_VALUE not in json.dumps(manifests)


def test_endpoints_are_inputs_of_the_plan() -> None:
    endpoints = p.Endpoints(
        kafka_bootstrap="127.0.0.1:19092",
        redis_url="redis://127.0.0.1:16379/0",
        llm_base_url="http://127.0.0.1:18000/v1",
        postgres_dsn="postgresql://qarun@127.0.0.1:15432/qarun",
    )
    planned = p.plan("demo", "ns", SPEC, endpoints)
    assert planned.bootstrap == "127.0.0.1:19092"
    writer = planned.component(p.STORAGE_WRITER)
    assert writer.env[env_name("storage", "postgres_dsn")] == endpoints.postgres_dsn
    assert writer.secret_env == ()  # a value the realization has needs no Secret
    worker = planned.component(p.LLM_WORKER)
    assert worker.env[env_name("llm", "base_url")] == endpoints.llm_base_url
    assert worker.env[env_name("storage", "redis_url")] == endpoints.redis_url
    params = parse(planned.flink.args, {})
    assert (params.bootstrap, params.llm_base_url) == ("127.0.0.1:19092", endpoints.llm_base_url)


def test_a_bad_value_names_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match=r"retry\.overload\.base_delay_seconds"):
        settings_from({env_name("retry", "overload", "base_delay_seconds"): "soon"}, monkeypatch)
    with pytest.raises(ValidationError, match=r"llm\.unknown_field"):
        settings_from({"QARUN_LLM__UNKNOWN_FIELD": "1"}, monkeypatch)
    argv = [*p.plan("demo", "ns", SPEC).flink.args, "--scoring.threshold", "2"]
    with pytest.raises(
        ParamError, match=re.escape("--scoring.threshold (QARUN_SCORING__THRESHOLD)")
    ):
        parse(argv, {})


def test_the_flink_job_falls_back_to_the_same_variables() -> None:
    planned = p.plan("demo", "ns", SPEC)
    args = list(planned.flink.args)
    flag = args.index("--scoring.threshold")
    del args[flag : flag + 2]
    params = parse(args, {env_name("scoring", "threshold"): "0.9"})
    assert params.threshold == 0.9
    assert isinstance(params, JobParams)


def test_the_charts_operator_settings_are_its_config_fields() -> None:
    template = ROOT / "charts" / "qarun-operator" / "templates" / "controller" / "deployment.yaml"
    prefix = env_name("operator") + DELIMITER
    names = re.findall(rf"name: ({re.escape(prefix)}[A-Z_]+)", template.read_text())
    assert names
    for name in names:
        assert name.removeprefix(prefix).lower() in OperatorConfig.model_fields, name


# A field added to the spec's source (here in memory, in a fresh interpreter): the CRD,
# the plan's env and the worker's settings all have it, with nothing else changed.
DUMMY_FIELD = '''
import importlib.abc, importlib.util, json, os, sys
from pathlib import Path
import qarun_core
path = Path(qarun_core.__file__).parent / "spec" / "answering.py"
source = path.read_text()
anchor = '    """Stop sending questions when a budget is reached; 0 = unlimited."""\\n'
assert anchor in source
source = source.replace(
    anchor, anchor + '    max_questions: int = Field(default=0, ge=0, description="Dummy.")\\n'
)

class Edited(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, _path, _target=None):
        if name == "qarun_core.spec.answering":
            return importlib.util.spec_from_loader(name, self, origin=str(path))
        return None

    def create_module(self, _spec):
        return None

    def exec_module(self, module):
        exec(compile(source, str(path), "exec"), module.__dict__)

sys.meta_path.insert(0, Edited())
from qarun_core import plan as p
from qarun_core.spec import QARunSpec
from qarun_operator import crd
spec = QARunSpec.model_validate({"llm": {"model": "m"}, "budget": {"maxQuestions": 42}})
env = p.plan("demo", "ns", spec).component(p.LLM_WORKER).env
os.environ.update(env)
from qarun_workers.settings import Settings
print(json.dumps({
    "crd": "maxQuestions" in crd.render(),
    "env": env.get("QARUN_BUDGET__MAX_QUESTIONS"),
    "settings": Settings().budget.max_questions,
}))
'''


def test_a_new_spec_field_reaches_the_workers_settings_unchanged() -> None:
    done = subprocess.run(
        [sys.executable, "-c", DUMMY_FIELD], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == {"crd": True, "env": "42", "settings": 42}
