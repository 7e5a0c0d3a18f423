"""The API over a run that went through the real pipeline, and a DEBUG-level run that
must not log the API key or an Authorization header anywhere."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from qarun_core.ports import free_port
from qarun_core.summary import RunSummary
from qarun_devstack.process import port_open

from .conftest import Roles, SimFactory, unique_run, wait_for
from .forwarding import Forwarder
from .pipeline import Infra, pipeline_env, start_pipeline, stored

SECRET = "sk-qarun-test-0123456789abcdef"
TOTAL = 150


def call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - http only
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def test_api_and_no_secret_in_any_log_line(
    infra: Infra,
    simulator: SimFactory,
    roles: Callable[[dict[str, str]], Roles],
    forwarder: Callable[[str], Forwarder],
) -> None:
    sim = simulator(
        "--latency",
        "0.01",
        "--rate-429",
        "0.2",
        "--rate-500",
        "0.1",
        "--log-level",
        "DEBUG",
        env={"QARUN_SIMULATOR__API_KEY": SECRET},
    )
    run = unique_run()
    port = free_port()
    env = pipeline_env(run, infra, sim.base_url) | {
        "QARUN_TRAFFIC__TOTAL": str(TOTAL),
        "QARUN_LOG_LEVEL": "DEBUG",
        "QARUN_API__PORT": str(port),
        "QARUN_LLM__API_KEY": SECRET,
    }
    r = roles(env)
    start_pipeline(r, run, infra.kafka)
    forwarder(run)
    r.start("api")
    wait_for(lambda: stored(infra.postgres.dsn, run)["rows"] >= TOTAL, 180, "the run's results")
    wait_for(lambda: port_open(port), 30, "the API")

    check_endpoints(port, run)
    r.stop_all()
    text = r.logs()
    assert "HTTP Request: POST" in text  # DEBUG logging really ran
    for leak in (SECRET, SECRET[3:], "Bearer sk", "authorization: Bearer", "Authorization: Bearer"):
        assert leak not in text


def check_endpoints(port: int, run: str) -> None:
    status, page = call(port, "GET", f"/runs/{run}/results?limit=5&offset=0")
    assert status == 200
    assert len(page["results"]) == 5
    first = page["results"][0]

    status, found = call(port, "GET", f"/status/{first['question_id']}?run={run}")
    assert (status, found["status"]) == (200, "completed")

    status, hit = call(
        port, "POST", "/query", {"title": first["title"], "content": first["content"], "run": run}
    )
    assert status == 200, hit
    assert hit["result"]["answer"]

    status, miss = call(
        port, "POST", "/query", {"title": "A question nobody asked yet?", "run": run}
    )
    assert status == 202
    assert miss["question_id"].startswith("api-")

    status, bad = call(port, "POST", "/query", {"content": "no title"})
    assert status == 422
    assert ["body", "title"] in [e["loc"] for e in bad["detail"]]

    status, unknown = call(port, "POST", "/query", {"title": "Why?", "run": "no-such-run"})
    assert status == 404
    assert "no-such-run" in unknown["detail"]
    status, bad = call(port, "POST", "/query", {"title": "a\u0000b", "run": run})
    assert status == 422  # PostgreSQL text cannot hold NUL: refused before the pipeline
    assert ["body", "title"] in [e["loc"] for e in bad["detail"]]
    status, bad = call(port, "GET", f"/runs/{run}/results?offset={2**63}")
    assert status == 422
    assert ["query", "offset"] in [e["loc"] for e in bad["detail"]]
    assert call(port, "GET", "/runs/no-such-run/results")[0] == 404

    status, summary = call(port, "GET", f"/runs/{run}/summary")
    assert status == 200
    parsed = RunSummary.model_validate(summary)  # what the operator and the CLI read
    assert parsed.progress.validated >= TOTAL
    assert parsed.progress.sent == parsed.progress.total == TOTAL
    assert parsed.generator_done
    assert parsed.progress.answered >= parsed.progress.validated
    assert parsed.score.mean is not None and 0 < parsed.score.mean <= 1
    assert parsed.latency_ms.llm is not None and parsed.latency_ms.llm.p50 > 0
    assert parsed.usage.prompt_tokens > 0
    assert parsed.lag is not None
    assert call(port, "GET", "/runs/not.a.run/summary")[0] == 422

    status, page = call(port, "GET", "/")  # redirected to the dashboard, same origin
    assert status == 200
    assert f'<body data-run="{run}">' in page  # the API's own run unless ?run= names one
    assert "/runs/${encodeURIComponent(run)}/summary" in page

    assert call(port, "GET", "/healthz") == (200, {"status": "ok"})
    assert call(port, "GET", "/readyz") == (200, {"status": "ready"})
    status, metrics = call(port, "GET", "/metrics")
    assert 'qarun_api_queries_total{outcome="hit"} 1.0' in metrics
    assert call(port, "GET", "/openapi.json")[0] == 200
