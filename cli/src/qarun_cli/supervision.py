"""The local runner's policy over the supervisor: what a crash, a scale request or a
generator that keeps failing mean for the run.

The supervisor (qarun_cli.supervisor) restarts replicas by their component's restart
policy; this layer decides what the run does about it, as Kubernetes and the operator
do for a cluster run: quote the crashed process's log, follow `qarun scale`, and give
up on a run whose generator (a Job) has failed five restarts in a row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from qarun_cli.supervisor import Exited, Supervisor, SupervisorEvent
from qarun_devstack.process import tail

# The generator is given up on after this many restarts that all failed (a Job's
# backoffLimit).
GENERATOR_RESTARTS = 5
SCALED = "llm-worker"  # the component `qarun scale` changes


class Supervision:
    def __init__(self, supervisor: Supervisor, logs: Path) -> None:
        self.supervisor = supervisor
        self.logs = logs

    def events(self) -> Iterator[str]:
        """What the supervisor did since the last call, each as a line to show; a
        failed exit is followed by the last line of that process's log."""
        for event in self.supervisor.check():
            yield f"qarun: {event}"
            if isinstance(event, Exited) and event.failed and (last := self.last_log_line(event)):
                yield last

    def last_log_line(self, event: SupervisorEvent) -> str:
        """The last line of a replica's log: usually why it crashed."""
        log_path = self.logs / f"{event.replica}.log"
        lines = [line for line in tail(log_path, 5).splitlines() if line.strip()]
        return f"qarun:   {log_path.name}: {lines[-1][:300]}" if lines else ""

    def scale_to(self, wanted: int | None) -> str:
        """Follow a replica count asked for with `qarun scale`; the line to show, if any."""
        if wanted is None or wanted == self.supervisor.components[SCALED].replicas:
            return ""
        self.supervisor.scale(SCALED, wanted)
        return f"qarun: scaling {SCALED} to {wanted}"

    def generator_failed(self) -> bool:
        codes = self.supervisor.exit_codes("generator")
        return (
            bool(codes)
            and all(code not in (None, 0) for code in codes)
            and self.supervisor.restarts("generator") >= GENERATOR_RESTARTS
        )
