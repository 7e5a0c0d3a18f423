"""A standalone Flink session cluster (one JobManager, one TaskManager) from PyFlink's
own distribution, the processes Flink's standalone Kubernetes session runs in its pods.

Jobs reach it the way they reach a session cluster in a pod: through its REST API (a jar
upload, then a run of the `PythonDriver` entry class), with `main` running detached in
the JobManager. The JobManager's Python is this interpreter, so the job's packages are
the virtualenv's.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from qarun_core.ports import free_port
from qarun_devstack.flink import java_home
from qarun_devstack.paths import MissingComponentError, flink_kafka_connector
from qarun_devstack.process import Service


def flink_home() -> Path:
    """The distribution inside the PyFlink package (bin/, lib/, opt/, conf/)."""
    spec = importlib.util.find_spec("pyflink")
    if spec is None or spec.origin is None:
        raise MissingComponentError("PyFlink is not installed: run `make setup`")
    return Path(spec.origin).parent


@dataclass
class FlinkSession:
    workdir: Path
    rest_port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    blob_port: int = field(default_factory=free_port)
    slots: int = 2
    jobmanager: Service | None = None
    taskmanager: Service | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def checkpoint_dir(self) -> Path:
        return self.workdir / "state"

    def config(self) -> dict[str, str]:
        python = sys.executable
        # The distribution's JVM options (--add-opens for Flink's reflection on Java 17).
        shipped = yaml.safe_load((flink_home() / "conf" / "config.yaml").read_text())
        return {
            "env.java.opts.all": shipped["env"]["java"]["opts"]["all"],
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": str(self.rpc_port),
            "jobmanager.bind-host": "127.0.0.1",
            "blob.server.port": str(self.blob_port),
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": str(self.rest_port),
            "taskmanager.host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.numberOfTaskSlots": str(self.slots),
            "jobmanager.memory.process.size": "1024m",
            "taskmanager.memory.process.size": "1536m",
            "execution.checkpointing.dir": (self.checkpoint_dir / "checkpoints").as_uri(),
            "execution.checkpointing.savepoint-dir": (self.checkpoint_dir / "savepoints").as_uri(),
            "execution.checkpointing.num-retained": "3",
            "python.client.executable": python,
            "python.executable": python,
            "web.tmpdir": str(self.workdir / "web"),
            "io.tmp.dirs": str(self.workdir / "io"),
        }

    def env(self) -> dict[str, str]:
        return {
            "JAVA_HOME": java_home(),
            "FLINK_CONF_DIR": str(self.workdir / "conf"),
            "FLINK_LOG_DIR": str(self.workdir / "log"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            # The job adds the Kafka connector to its pipeline jars; an image has it in lib/.
            "QARUN_FLINK__CONNECTOR_JAR": str(flink_kafka_connector()),
            "PYFLINK_CLIENT_EXECUTABLE": sys.executable,
        }

    def start(self, timeout: float = 120) -> FlinkSession:
        conf = self.workdir / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        shutil.copy(flink_home() / "conf" / "log4j-console.properties", conf)
        lines = [f"{key}: {json.dumps(value)}" for key, value in self.config().items()]
        (conf / "config.yaml").write_text("\n".join(lines) + "\n")
        self._start_jobmanager(timeout)
        self.start_taskmanager(timeout)
        return self

    def _start_jobmanager(self, timeout: float) -> None:
        self.jobmanager = Service(
            "flink-jobmanager",
            ["bash", flink_home() / "bin" / "jobmanager.sh", "start-foreground"],
            self.workdir / "jobmanager.log",
            env=self.env(),
        ).start()
        self.jobmanager.wait_ready(self._rest_up, timeout, "serving its REST API")

    def restart_jobmanager(self, timeout: float = 120) -> None:
        """Kill the JobManager and start a new one, as a restarted pod: without high
        availability it knows no job; the TaskManager registers with it again."""
        assert self.jobmanager is not None
        self.jobmanager.kill()
        self._start_jobmanager(timeout)
        assert self.jobmanager is not None
        self.jobmanager.wait_ready(self._slots_registered, timeout, "joined by the TaskManager")

    def start_taskmanager(self, timeout: float = 120) -> None:
        self.taskmanager = Service(
            "flink-taskmanager",
            ["bash", flink_home() / "bin" / "taskmanager.sh", "start-foreground"],
            self.workdir / "taskmanager.log",
            env=self.env(),
        ).start()
        self.taskmanager.wait_ready(self._slots_registered, timeout, "registered")

    def overview(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/overview", timeout=5) as response:  # noqa: S310 - loopback
            found: dict[str, int] = json.load(response)
            return found

    def _rest_up(self) -> bool:
        return "slots-total" in self.overview()

    def _slots_registered(self) -> bool:
        return self.overview().get("slots-total", 0) >= self.slots

    def stop(self) -> None:
        for service in (self.taskmanager, self.jobmanager):
            if service is not None:
                service.stop(grace=15)
