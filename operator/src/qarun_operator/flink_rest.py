"""Flink's REST API, for the scoring job on a standalone session cluster.

The job is submitted exactly as the Flink operator submits a session job without a
jarURI: an empty jar is uploaded, then run with the `PythonDriver` entry class and the
`-pym qarun_flink.job ...` arguments. Flink adds flink-python from the distribution's
opt/ to the program for that entry class, and the job's `main` runs detached in the
JobManager (it returns once the job is submitted).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import urllib3

from qarun_operator.objects import JSON

PYTHON_DRIVER = "org.apache.flink.client.python.PythonDriver"
EMPTY_JAR_NAME = "qarun-empty.jar"
# States after which the job will not run again by itself.
TERMINAL_STATES = frozenset({"FAILED", "CANCELED", "FINISHED"})


class FlinkRestError(Exception):
    """The JobManager is unreachable or refused a request; the message says which."""


@cache
def empty_jar() -> bytes:
    """A jar holding nothing but a manifest: what PackagedProgram needs to run an entry
    class from the class path (here the PythonDriver)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: qarun\n\n")
    return buffer.getvalue()


@dataclass
class FlinkRest:
    url: str  # e.g. http://demo-flink-rest.ns.svc:8081
    timeout: float = 10.0
    # Running a jar runs the job's main in the JobManager, which builds the job graph in
    # Python: seconds to a minute on a busy node.
    submit_timeout: float = 180.0
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False))

    def _request(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> JSON:
        try:
            response = self.http.request(
                method, f"{self.url}{path}", timeout=timeout or self.timeout, **kwargs
            )
        except urllib3.exceptions.HTTPError as error:
            raise FlinkRestError(f"{method} {self.url}{path}: {error}") from error
        body: JSON = json.loads(response.data) if response.data else {}
        if response.status >= 400:
            errors = body.get("errors", [response.data[:2000]])
            raise FlinkRestError(f"{method} {path}: HTTP {response.status}: {errors}")
        return body

    def job_states(self) -> dict[str, str]:
        """Every job the JobManager knows, by id: RUNNING, FAILED, ..."""
        jobs = self._request("GET", "/jobs/overview").get("jobs", [])
        return {str(j["jid"]): str(j["state"]) for j in jobs}

    def upload_empty_jar(self) -> str:
        """Uploads the empty jar; returns its id on the JobManager."""
        done = self._request(
            "POST",
            "/jars/upload",
            fields={"jarfile": (EMPTY_JAR_NAME, empty_jar(), "application/x-java-archive")},
        )
        return str(done["filename"]).rsplit("/", 1)[-1]

    def run_python_job(
        self,
        jar_id: str,
        args: Sequence[str],
        *,
        job_id: str,
        parallelism: int,
        restore_from: str | None,
    ) -> str:
        """Runs the PythonDriver with `args` (-pym MODULE ...); returns the job id."""
        body: JSON = {
            "entryClass": PYTHON_DRIVER,
            "programArgsList": list(args),
            "parallelism": parallelism,
            "jobId": job_id,
            "allowNonRestoredState": False,
        }
        if restore_from:
            body["savepointPath"] = restore_from
        done = self._request("POST", f"/jars/{jar_id}/run", json=body, timeout=self.submit_timeout)
        return str(done["jobid"])

    def delete_jar(self, jar_id: str) -> None:
        self._request("DELETE", f"/jars/{jar_id}")

    def latest_checkpoint(self, job_id: str) -> str | None:
        """The external path of the job's latest completed checkpoint, if any."""
        return self._latest(job_id, "completed")

    def restored_checkpoint(self, job_id: str) -> str | None:
        """The checkpoint or savepoint the job was restored from, if any."""
        return self._latest(job_id, "restored")

    def _latest(self, job_id: str, which: str) -> str | None:
        found = self._request("GET", f"/jobs/{job_id}/checkpoints")
        latest = (found.get("latest") or {}).get(which) or {}
        path = latest.get("external_path")
        return str(path) if path else None

    def cancel(self, job_id: str) -> None:
        self._request("PATCH", f"/jobs/{job_id}?mode=cancel")
