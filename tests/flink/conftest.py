"""Fixtures for the scoring job's tests (helpers in harness.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from harness import JobProcess, JudgeEndpoint, job_starter

from qarun_devstack.flink import FlinkSetup


@pytest.fixture(scope="session")
def judge_endpoint() -> Iterator[JudgeEndpoint]:
    endpoint = JudgeEndpoint()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, payload = endpoint.reply(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.server = server
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()


@pytest.fixture
def start_job(flink: FlinkSetup, tmp_path: Path) -> Iterator[Callable[..., JobProcess]]:
    with job_starter(flink, tmp_path) as start:
        yield start
