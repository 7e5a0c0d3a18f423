"""Where a local run keeps what must outlive one `qarun run`: its database, its logs,
the endpoints of the live run and the wanted number of workers.

    $QARUN_STATE_DIR/runs/<run>/
        run.json        endpoints and pids of the live run (removed when it stops)
        replicas        wanted LLM worker replicas, written by `qarun scale`
        stack/          PostgreSQL data (kept: a re-run resumes), Kafka, Redis
        logs/           one log file per process
        dead-letters.jsonl  the dead letters of the last run, saved when it stopped

The default is `$XDG_STATE_HOME/qarun` (`~/.local/state/qarun`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qarun_cli.cli_settings import CLISettings


def state_root() -> Path:
    return CLISettings().state_root()


@dataclass
class LiveRun:
    """What a running `qarun run` publishes for the other commands (`status`, `scale`...)."""

    run: str
    pid: int
    api_url: str
    kafka: str
    postgres: str
    redis: str
    llm_base_url: str
    total: int
    spec_file: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class RunDir:
    def __init__(self, run: str, root: Path | None = None) -> None:
        self.run = run
        self.path = (root or state_root()) / "runs" / run

    @property
    def stack(self) -> Path:
        return self.path / "stack"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def record(self) -> Path:
        return self.path / "run.json"

    @property
    def replicas_file(self) -> Path:
        return self.path / "replicas"

    @property
    def dead_letters(self) -> Path:
        return self.path / "dead-letters.jsonl"

    def exists(self) -> bool:
        return self.path.is_dir()

    def create(self) -> RunDir:
        for directory in (self.path, self.stack, self.logs):
            directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # As root, PostgreSQL runs as the `postgres` user, which must be able to reach
            # its data directory below ours: let everyone traverse (not list) the path.
            for directory in (self.stack, *self.stack.parents):
                mode = directory.stat().st_mode
                if not mode & 0o001:
                    directory.chmod(mode | 0o001)
        return self

    def publish(self, live: LiveRun) -> None:
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(live), indent=2))
        tmp.replace(self.record)

    def unpublish(self) -> None:
        self.record.unlink(missing_ok=True)

    def live(self) -> LiveRun | None:
        """The live run's record, or None when no `qarun run` of this run is alive."""
        try:
            data = json.loads(self.record.read_text())
        except (FileNotFoundError, ValueError):
            return None
        live = LiveRun(**data)
        if not pid_alive(live.pid):
            return None  # a record left by a runner that was killed
        return live

    def wanted_replicas(self) -> int | None:
        try:
            return int(self.replicas_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def want_replicas(self, replicas: int) -> None:
        tmp = self.replicas_file.with_suffix(".tmp")
        tmp.write_text(f"{replicas}\n")
        tmp.replace(self.replicas_file)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(FileNotFoundError):
        # A zombie is not alive for our purposes.
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True
