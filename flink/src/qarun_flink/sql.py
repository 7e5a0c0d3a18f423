"""The scoring job's Flink SQL: the Kafka source and sinks, and the metrics window.

Only integers, routing constants and quoted parameters (`quoted`) are interpolated:
no text from a message reaches a statement.
"""

from __future__ import annotations

from qarun_flink.environment import ms
from qarun_flink.metrics import PER_ATTEMPT_MEASURES, attempt_column, outcome_column
from qarun_flink.params import Delivery, JobParams, StartingOffsets
from qarun_flink.records import Dest
from qarun_flink.routing import RouteOutcome


def source_ddl(params: JobParams) -> str:
    startup = {
        StartingOffsets.GROUP: "'scan.startup.mode' = 'group-offsets', "
        "'properties.auto.offset.reset' = 'earliest'",
        StartingOffsets.EARLIEST: "'scan.startup.mode' = 'earliest-offset'",
        StartingOffsets.LATEST: "'scan.startup.mode' = 'latest-offset'",
    }[params.starting_offsets]
    bounded = ", 'scan.bounded.mode' = 'latest-offset'" if params.bounded else ""
    # Raw bytes plus the record's coordinates: an unreadable payload still reaches the
    # dead-letter topic with its key, partition and offset.
    return f"""
        CREATE TEMPORARY TABLE answers (
            k BYTES, v BYTES,
            src_partition INT METADATA FROM 'partition' VIRTUAL,
            src_offset BIGINT METADATA FROM 'offset' VIRTUAL
        ) WITH (
            'connector' = 'kafka', 'topic' = {quoted(params.answers_topic)},
            'properties.bootstrap.servers' = {quoted(params.bootstrap)},
            'properties.group.id' = {quoted(params.group_id)},
            'key.format' = 'raw', 'key.fields' = 'k',
            'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY',
            {startup}{bounded}
        )"""


def sink_ddl(name: str, topic: str, params: JobParams) -> str:
    if params.delivery is Delivery.EXACTLY_ONCE:
        delivery = (
            "'sink.delivery-guarantee' = 'exactly-once', "
            f"'sink.transactional-id-prefix' = {quoted(f'qarun-{params.run}-{name}')}, "
            "'properties.transaction.timeout.ms' = '900000'"
        )
    else:
        delivery = "'sink.delivery-guarantee' = 'at-least-once'"
    # batch.size: with the default 16 KiB a produce request carried about ten results,
    # and the producers' network threads were a third of the job's JVM samples
    # (profiled); 256 KiB halved the broker's CPU. linger.ms bounds the wait when idle.
    return f"""
        CREATE TEMPORARY TABLE {name} (k STRING, v BYTES) WITH (
            'connector' = 'kafka', 'topic' = {quoted(topic)},
            'properties.bootstrap.servers' = {quoted(params.bootstrap)},
            'key.format' = 'raw', 'key.fields' = 'k',
            'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY',
            'properties.linger.ms' = '5', 'properties.batch.size' = '262144', {delivery}
        )"""


# Every metric event: first-attempt finals come from Settle (the "settled" view), the
# rest from Route (the "routed_events" view).
EVENTS_SQL = f"""
    SELECT run, attempt, score, improvement, outcome, PROCTIME() AS pt FROM (
        SELECT run, attempt, score, improvement, outcome FROM settled
        WHERE dest = '{Dest.RESULTS}'
        UNION ALL
        SELECT run, attempt, score, improvement, outcome FROM routed_events)"""  # noqa: S608

# A per-attempt measure's SQL aggregate, by its name in metrics.PER_ATTEMPT_MEASURES.
_PER_ATTEMPT_SQL = {
    "scored": "COUNT(*) FILTER (WHERE attempt = {a})",
    "score_sum": "SUM(score) FILTER (WHERE attempt = {a})",
    "final": f"COUNT(*) FILTER (WHERE attempt = {{a}} AND outcome <> '{RouteOutcome.REGENERATE}')",
    "improved": "COUNT(improvement) FILTER (WHERE attempt = {a})",
    "improvement_sum": "SUM(improvement) FILTER (WHERE attempt = {a})",
}


def metrics_window_sql(max_attempts: int, window_seconds: float) -> str:
    """One row per run and tumbling window of the "events" view, every column named
    for metrics.RunMetrics.from_window, which reads them by name."""
    outcomes = [
        f"COUNT(*) FILTER (WHERE outcome = '{o}') AS {outcome_column(o)}"
        for o in (RouteOutcome.VALIDATED, RouteOutcome.REGENERATE, RouteOutcome.EXHAUSTED)
    ]
    per_attempt = [
        f"{_PER_ATTEMPT_SQL[measure].format(a=a)} AS {attempt_column(measure, a)}"
        for a in range(1, max_attempts + 1)
        for measure in PER_ATTEMPT_MEASURES
    ]
    columns = ",\n            ".join(
        [
            "run",
            "window_start",
            "window_end",
            "COUNT(*) AS n",
            "SUM(score) AS score_sum",
            "SUM(score * score) AS score_squares",
            *outcomes,
            *per_attempt,
        ]
    )
    return f"""
        SELECT {columns}
        FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(pt),
            INTERVAL '{ms(window_seconds) / 1000:.3f}' SECOND(9, 3)))
        WHERE outcome <> '{RouteOutcome.DUPLICATE}'
        GROUP BY run, window_start, window_end"""  # noqa: S608


def quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"
