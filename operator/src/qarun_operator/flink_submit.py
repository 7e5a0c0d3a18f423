"""The scoring job on a standalone session cluster: observe it on the JobManager, and
submit it whenever the JobManager does not run it.

That covers the first start, a JobManager restart (high availability is off, so a new
JobManager knows no job) and a job that failed or was cancelled. Every submission
restores from the latest completed checkpoint recorded in the QARun's status, so the job
resumes where it was: its keyed state and the Kafka offsets live in the checkpoint.

Job ids are derived from the QARun's uid and a submission counter: a resubmission after a
lost status patch asks for the same id, which the JobManager already runs, instead of
starting a second job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from qarun_core import plan as p
from qarun_core.spec import FlinkStatus
from qarun_operator.flink_rest import TERMINAL_STATES, FlinkRest, FlinkRestError


@dataclass
class JobObservation:
    status: FlinkStatus  # what the QARun's status.flink becomes
    state: str  # the job's state on the JobManager; "" = not known
    problem: str | None = None  # for the Degraded condition
    note: str | None = None  # for an event (a submission)


def job_id(uid: str, submissions: int) -> str:
    """A Flink JobID (32 hex digits) for the n-th submission of a run."""
    return hashlib.sha256(f"{uid}/{submissions}".encode()).hexdigest()[:32]


def reconcile_job(
    rest: FlinkRest, run: p.RunPlan, uid: str, previous: FlinkStatus, *, submit: bool
) -> JobObservation:
    """Observe the job and, when `submit` and the JobManager lacks it, submit it."""
    status = previous.model_copy()
    try:
        states = rest.job_states()
    except FlinkRestError as error:
        return JobObservation(status, "", problem=f"the JobManager is not reachable: {error}")
    current = job_id(uid, status.submissions)
    state = states.get(current)
    if state in TERMINAL_STATES and submit:
        status.submissions += 1  # a new id: the JobManager keeps the old one's result
        current = job_id(uid, status.submissions)
        state = states.get(current)
    status.job_id = current
    note = None
    if state is None and submit:
        restore = status.last_checkpoint or None
        try:
            jar = rest.upload_empty_jar()
            try:
                rest.run_python_job(
                    jar,
                    ["-pym", run.flink.module, *run.flink.args],
                    job_id=current,
                    parallelism=run.flink.parallelism,
                    restore_from=restore,
                )
            finally:
                rest.delete_jar(jar)
            state = rest.job_states().get(current, "")
        except FlinkRestError as error:
            status.state = ""
            return JobObservation(status, "", problem=f"submitting the scoring job: {error}")
        note = f"submitted the scoring job {current}" + (f" from {restore}" if restore else "")
    elif state == "RUNNING":
        try:
            status.last_checkpoint = rest.latest_checkpoint(current) or status.last_checkpoint
        except FlinkRestError as error:
            return JobObservation(status, state, problem=f"reading checkpoints: {error}")
    status.state = state or ""
    problem = f"the scoring job {current} is {state}" if state == "FAILED" else None
    return JobObservation(status, status.state, problem=problem, note=note)
