"""The scoring job graph: Kafka answers in, results / questions / dlq / metrics out.

The job's module docstring (qarun_flink.job) draws it; `build_job` wires it.
"""

from __future__ import annotations

from typing import Any

from pyflink.common import Time
from pyflink.common.typeinfo import Types
from pyflink.datastream import AsyncDataStream, DataStream, StreamExecutionEnvironment
from pyflink.table import DataTypes, StreamTableEnvironment, Table
from pyflink.table.expressions import col, lit
from pyflink.table.udf import udf

from qarun_core.spec import ScoringMethod
from qarun_flink.environment import ms
from qarun_flink.functions import JudgeAnswers, MetricsMessage, Route, SettleBatch
from qarun_flink.params import JobParams
from qarun_flink.records import DLQ, EVENTS, KV, QUESTIONS, SCORED, SETTLED, SETTLED_FIELDS, Dest
from qarun_flink.sql import EVENTS_SQL, metrics_window_sql, sink_ddl, source_ddl


def build_job(env: StreamExecutionEnvironment, params: JobParams) -> None:
    """The whole job graph; `env.execute()` runs it."""
    tables = StreamTableEnvironment.create(env)
    # Window bounds of the metrics are UTC wall-clock times (see MetricsMessage).
    tables.get_config().set("table.local-time-zone", "UTC")
    tables.execute_sql(source_ddl(params))
    answers = tables.from_path("answers")
    settled = answers.select(
        settle_udf(params)(col("k"), col("v"), col("src_partition"), col("src_offset")).alias("s")
    ).select(*[col("s").get(name).alias(name) for name, _ in SETTLED_FIELDS])
    # Read by the keyed route, the metrics and two sinks, which the planner translates
    # separately: as a table, each would scan Kafka and run the UDF again. Through a
    # DataStream they share one scan and one UDF (Flink SQL only filters it per sink).
    tables.create_temporary_view("settled", tables.from_data_stream(tables.to_data_stream(settled)))

    keyed = (
        tables.from_path("settled")
        .where(col("dest") == lit(Dest.KEYED))
        .select(col("k"), col("v").cast(DataTypes.STRING()).alias("v"), col("score"), lit(""))
    )
    pending = tables.to_data_stream(keyed)
    scored = judge(pending, params) if params.scorer is ScoringMethod.JUDGE else pending
    routed = (
        scored.key_by(lambda record: record[0], key_type=Types.STRING())
        .process(Route(params), output_type=KV)
        .name("route by score")
    )
    metrics = run_metrics(tables, routed.get_side_output(EVENTS), params)

    # Settle's records and Route's go to separate sink operators (of the same topics):
    # a sink fed by one chain runs in that chain's thread, where a sink fed by two
    # would be a task of its own, each record crossing a network buffer to it
    # (serialized, and held up to the buffer timeout).
    sinks = tables.create_statement_set()
    outputs = [
        ("results", params.results_topic, _settled(tables, Dest.RESULTS)),
        ("results_routed", params.results_topic, _as_bytes(tables, routed)),
        ("questions", params.questions_topic, _as_bytes(tables, routed.get_side_output(QUESTIONS))),
        ("dlq", params.dlq_topic, _settled(tables, Dest.DLQ)),
        ("dlq_routed", params.dlq_topic, _as_bytes(tables, routed.get_side_output(DLQ))),
        ("metrics", params.metrics_topic, _as_bytes(tables, metrics)),
    ]
    for name, topic, table in outputs:
        tables.execute_sql(sink_ddl(name, topic, params))
        sinks.add_insert(name, table)
    sinks.attach_as_datastream()


def _settled(tables: StreamTableEnvironment, dest: str) -> Table:
    return tables.from_path("settled").where(col("dest") == lit(dest)).select(col("k"), col("v"))


def _as_bytes(tables: StreamTableEnvironment, stream: DataStream) -> Table:
    """A (k, v) stream of text as the sinks' (k STRING, v BYTES) table."""
    table = tables.from_data_stream(stream)
    return table.select(col("k"), col("v").cast(DataTypes.BYTES()).alias("v"))


def run_metrics(
    tables: StreamTableEnvironment, events: DataStream, params: JobParams
) -> DataStream:
    """One metrics record per run and tumbling processing-time window.

    The window aggregates in Flink SQL (JVM): a Python window did per-event state and
    timer round trips on a single subtask (every event has the run's key) and capped
    the whole job (profiled). Per-attempt figures are columns for attempts
    1..max_attempts; Python only formats the one row per window.
    """
    tables.create_temporary_view("routed_events", events)
    tables.create_temporary_view("events", tables.sql_query(EVENTS_SQL))
    window = tables.sql_query(
        metrics_window_sql(params.max_attempts, params.metrics_window_seconds)
    )
    rows = tables.to_data_stream(window)
    return rows.map(MetricsMessage(params), output_type=KV).name("run metrics")


def judge(parsed: DataStream, params: JobParams) -> DataStream:
    # The judge waits on an LLM: async I/O keeps many calls in flight per subtask.
    # Ordered, so that a replay meets answers in the order it did the first time.
    return AsyncDataStream.ordered_wait(
        parsed,
        JudgeAnswers(params),
        Time.milliseconds(ms(params.judge_timeout_seconds * 4)),
        params.judge_concurrency,
        SCORED,
    ).name("score (judge)")


def settle_udf(params: JobParams) -> Any:
    """A pandas UDF: Arrow batches of raw answers in, a SETTLED row per answer out."""
    return udf(SettleBatch(params), result_type=SETTLED, func_type="pandas")
