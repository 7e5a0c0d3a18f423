"""Redis from Debian's packages, on a loopback port, without persistence in tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import redis

from qarun_core.ports import free_port
from qarun_devstack import paths
from qarun_devstack.process import Service


@dataclass
class Redis:
    workdir: Path
    port: int = field(default_factory=free_port)
    service: Service | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> Redis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv: list[str | Path] = [
            paths.system_bin("redis-server", "redis-server"),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip
        self.service = Service("redis", argv, self.workdir / "redis.log")
        self.service.start().wait_ready(self._ready, timeout, "answering PING")
        return self

    def _ready(self) -> bool:
        with redis.Redis.from_url(self.url, socket_timeout=2) as client:
            return bool(client.ping())

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
