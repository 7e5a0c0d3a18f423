"""The dashboard page and a small same-origin server for it.

The page (index.html) is static and reads the API's JSON from its own origin. Until
the API serves the page itself, `DashboardServer` serves it at /dashboard and passes
every other GET through to the API, so the page and the API share one origin.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources


def page() -> bytes:
    return (resources.files("qarun_cli.dashboard") / "index.html").read_bytes()


class DashboardServer:
    """Serves /dashboard on 127.0.0.1:port and proxies other GETs to the API."""

    def __init__(self, api_url: str, port: int) -> None:
        self.api_url = api_url.rstrip("/")
        self.port = port
        html = page()
        api = self.api_url

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] in ("/dashboard", "/dashboard/"):
                    self._send(200, "text/html; charset=utf-8", html)
                    return
                try:
                    with urllib.request.urlopen(api + self.path, timeout=10) as answer:  # noqa: S310 - loopback API
                        kind = answer.headers.get("Content-Type", "application/json")
                        self._send(answer.status, kind, answer.read())
                except urllib.error.HTTPError as error:
                    self._send(error.code, "application/json", error.read())
                except OSError as error:
                    self._send(502, "text/plain", f"API unreachable: {error}".encode())

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:  # quiet: the runner prints progress
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DashboardServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
