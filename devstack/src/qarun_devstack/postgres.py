"""PostgreSQL from Debian's packages, on a loopback port with data in a temp dir.

PostgreSQL refuses to run as root; as root we run it as the `postgres` user that the
Debian package creates.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from qarun_core.ports import free_port
from qarun_devstack import paths
from qarun_devstack.process import Service, run

DATABASE = "qarun"
USER = "qarun"


def _unprivileged_user() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


@dataclass
class Postgres:
    workdir: Path
    port: int = field(default_factory=free_port)
    durable: bool = False
    service: Service | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self, timeout: float = 60) -> Postgres:
        user = _unprivileged_user()
        data = self.workdir / "data"
        self.workdir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            shutil.chown(self.workdir, user)
            self.workdir.chmod(0o755)
            for parent in self.workdir.parents:  # the server user must reach its data dir
                if not parent.stat().st_mode & 0o001:
                    parent.chmod(parent.stat().st_mode | 0o001)
        if not (data / "PG_VERSION").exists():
            run(
                [paths.postgres_bin("initdb"), "-D", data, "-U", USER, "-A", "trust", "-E", "UTF8"],
                "initdb",
                user=user,
            )
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data}"]
        if not self.durable:  # tests only: a crash of the machine loses nothing we keep
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            settings += ["-c", "full_page_writes=off"]
        self.service = Service(
            "postgres",
            [paths.postgres_bin("postgres"), "-D", data, "-p", str(self.port), *settings],
            self.workdir / "postgres.log",
            user=user,
        )
        self.service.start().wait_ready(self._ready, timeout, "accepting connections")
        return self

    def _ready(self) -> bool:
        admin = f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f"CREATE DATABASE {DATABASE}")
        return True

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop as an operator's restart does (SIGINT: a fast shutdown, which ends every
        session; SIGTERM's smart one would wait for the clients to leave) and start again
        on the same port and data, after `down_seconds` down."""
        if self.service is not None:
            self.service.stop(grace=30, how=signal.SIGINT)
        time.sleep(down_seconds)
        self.start()
