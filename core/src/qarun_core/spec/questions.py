"""What a run asks and how fast: the data set and the traffic that sends it."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from qarun_core.spec.model import Model, Rule


class DatasetFormat(StrEnum):
    YAHOO_CSV = "yahoo-csv"
    CSV = "csv"
    JSONL = "jsonl"
    PARQUET = "parquet"


class DatasetSpec(Model):
    """Where the questions and their reference answers come from."""

    source: str = Field(
        default="sample",
        min_length=1,
        max_length=2048,
        pattern=r"^(sample|https?://\S+|configmap:[a-z0-9]([-a-z0-9.]*[a-z0-9])?|/\S*)$",
        description=(
            "'sample' (the bundled Yahoo! Answers sample), an http(s) URL, "
            "'configmap:NAME' (a ConfigMap in the run's namespace, key 'data') or an "
            "absolute file path inside the generator's volume."
        ),
    )
    format: DatasetFormat = Field(
        default=DatasetFormat.YAHOO_CSV,
        description=(
            "yahoo-csv (4 columns: class, title, content, best answer; no header), csv "
            "(header with title, content, best_answer), jsonl or parquet (same fields)."
        ),
    )
    limit: int = Field(
        default=0, ge=0, description="Read at most this many questions; 0 reads them all."
    )


class Distribution(StrEnum):
    POISSON = "poisson"
    BURSTY = "bursty"
    CONSTANT = "constant"


class BurstSpec(Model):
    """Bursts on top of the base rate (distribution 'bursty' only)."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.lengthSeconds <= self.everySeconds",
            "burst.lengthSeconds must not exceed burst.everySeconds",
            ".lengthSeconds",
            lambda m: m.length_seconds <= m.every_seconds,
        ),
    )
    factor: float = Field(
        default=5.0, ge=1, le=1000, description="Rate multiplier during a burst (at least 1)."
    )
    every_seconds: float = Field(
        default=30.0, gt=0, le=86400, description="Seconds from the start of one burst to the next."
    )
    length_seconds: float = Field(default=5.0, gt=0, le=86400, description="Length of a burst.")


class TrafficSpec(Model):
    """How fast questions are sent and how many."""

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "!(self.total > 0 && self.durationSeconds > 0)",
            "set traffic.total or traffic.durationSeconds, not both",
            ".durationSeconds",
            lambda m: not (m.total > 0 and m.duration_seconds > 0),
        ),
    )
    distribution: Distribution = Field(
        default=Distribution.POISSON,
        description="Inter-arrival times: poisson (random), bursty (poisson with bursts) or "
        "constant (evenly spaced).",
    )
    rate_per_second: float = Field(
        default=50.0, gt=0, le=100000, description="Mean questions sent per second."
    )
    total: int = Field(
        default=0,
        ge=0,
        description="Questions to send; 0 sends the whole data set (see dataset.limit) or "
        "until durationSeconds.",
    )
    duration_seconds: int = Field(
        default=0,
        ge=0,
        description="Send for this many seconds, repeating the data set as needed (each "
        "pass has new question ids); 0 = no time limit.",
    )
    burst: BurstSpec = Field(default_factory=BurstSpec, description=BurstSpec.__doc__)
