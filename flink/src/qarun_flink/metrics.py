"""Run metrics over a window of scored answers: the run's metrics topic record.

Flink SQL aggregates the window (sql.metrics_window_sql); this module names its
columns and turns one row into the record, so that the arithmetic and the record's
shape are tested without Flink.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from qarun_core.messages import SCHEMA_VERSION
from qarun_core.summary import population_stddev
from qarun_flink.routing import RouteOutcome

# The per-attempt measures of a window: each is a column per attempt (attempt_column)
# of the window's SQL.
PER_ATTEMPT_MEASURES = ("scored", "score_sum", "final", "improved", "improvement_sum")


def attempt_column(measure: str, attempt: int) -> str:
    return f"{measure}_{attempt}"


def outcome_column(outcome: RouteOutcome) -> str:
    return f"n_{outcome.value}"


@dataclass
class _Sum:
    count: int = 0
    total: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class RunMetrics:
    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    scored_by_attempt: dict[int, _Sum] = field(default_factory=dict)
    final_by_attempt: dict[int, int] = field(default_factory=dict)
    improvement_by_attempt: dict[int, _Sum] = field(default_factory=dict)

    @classmethod
    def from_window(cls, row: Mapping[str, Any], max_attempts: int) -> RunMetrics:
        """The metrics of one row of sql.metrics_window_sql, its columns read by name."""
        metrics = cls(
            count=row["n"], total=row["score_sum"] or 0.0, squares=row["score_squares"] or 0.0
        )
        for outcome in (RouteOutcome.VALIDATED, RouteOutcome.REGENERATE, RouteOutcome.EXHAUSTED):
            if n := row[outcome_column(outcome)]:
                metrics.outcomes[outcome] = n
        for a in range(1, max_attempts + 1):
            cell = {m: row[attempt_column(m, a)] for m in PER_ATTEMPT_MEASURES}
            if cell["scored"]:
                metrics.scored_by_attempt[a] = _Sum(cell["scored"], cell["score_sum"])
            if cell["final"]:
                metrics.final_by_attempt[a] = cell["final"]
            if cell["improved"]:
                metrics.improvement_by_attempt[a] = _Sum(cell["improved"], cell["improvement_sum"])
        return metrics

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def stddev(self) -> float:
        """The run summary's definition (population), over this window's scores."""
        return population_stddev(self.count, self.total, self.squares) or 0.0

    def to_json(self, run: str, start_ms: int, end_ms: int) -> str:
        def iso(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).isoformat()

        return json.dumps(
            {
                "schema_version": SCHEMA_VERSION,
                "kind": "metrics",
                "run": run,
                "window_start": iso(start_ms),
                "window_end": iso(end_ms),
                "count": self.count,
                "score_mean": round(self.mean, 6),
                "score_stddev": round(self.stddev, 6),
                "outcomes": self.outcomes,
                "scored_by_attempt": {
                    str(a): s.count for a, s in sorted(self.scored_by_attempt.items())
                },
                "final_by_attempt": {str(a): n for a, n in sorted(self.final_by_attempt.items())},
                "score_mean_by_attempt": {
                    str(a): round(s.mean, 6) for a, s in sorted(self.scored_by_attempt.items())
                },
                "improvement_mean_by_attempt": {
                    str(a): round(s.mean, 6) for a, s in sorted(self.improvement_by_attempt.items())
                },
            },
            separators=(",", ":"),
        )
