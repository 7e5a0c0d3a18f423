"""PyFlink wiring: the Kafka connector jar and the Python that runs the UDF workers.

A PyFlink job runs on an embedded MiniCluster inside the py4j gateway JVM; nothing
is started here until a job executes.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qarun_devstack import paths
from qarun_devstack.paths import MissingComponentError


def java_home() -> str:
    """JAVA_HOME if set, else the JDK behind `java` on PATH (Flink 2.x needs 11 or 17+)."""
    if home := os.environ.get("JAVA_HOME"):
        return home
    java = shutil.which("java")
    if java is None:
        raise MissingComponentError(
            "java is not installed: apt-get install openjdk-17-jdk-headless"
        )
    return str(Path(java).resolve().parents[1])


@dataclass
class FlinkSetup:
    connector_jar: Path = field(default_factory=paths.flink_kafka_connector)

    @property
    def jar_url(self) -> str:
        return self.connector_jar.resolve().as_uri()

    @property
    def env_vars(self) -> dict[str, str]:
        """Environment for a subprocess that submits a PyFlink job."""
        venv_bin = str(Path(sys.executable).parent)
        return {
            "JAVA_HOME": java_home(),
            "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "QARUN_FLINK__CONNECTOR_JAR": str(self.connector_jar),
        }

    def configure(self, env: Any) -> Any:
        """Wire a StreamExecutionEnvironment: connector jar + this interpreter for UDFs.

        Python UDF workers run the `python` found on PATH unless told otherwise, which
        fails with "No module named 'pyflink'" outside the virtualenv.
        """
        env.add_jars(self.jar_url)
        env.set_python_executable(sys.executable)
        return env
