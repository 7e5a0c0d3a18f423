"""The QARun scoring job: answers in, results / regenerations / metrics / dead letters out.

    answers ─► settle: parse + score + final at once (first attempt) ─► results
                 └ unparseable ─► dlq
                 └ the rest ─► key by (run, question_id) ─► route (keyed state)
      results ◄─ validated, or exhausted with the best attempt (keyed state)
      questions ◄─ below threshold with attempts left: attempt+1, history
      dlq ◄─ the scorer gave up (judge)
      metrics ◄─ tumbling processing-time window per run (Flink SQL) ◄─ an event per
                 scored answer

Settle is one vectorized (pandas) UDF on the Kafka table: Python sees Arrow batches
of raw answers and returns, per answer, where it goes (results, dlq or the keyed
route) with the record to send; Flink SQL splits the batch to the sinks. Per-record
Python (Beam fn-API) calls cost more than the parsing and scoring themselves
(profiled: ~130 us of framework per record against ~60 us of work), so only the
answers whose outcome depends on keyed state still cross to a per-record operator.
Lexical and embedding score inside Settle, a batch at a time (the model encodes a
batch per forward pass); the judge scores after Settle, through async I/O.

Delivery: at-least-once Kafka sinks by default, every record keyed by the question id
(the run is in the topic name). Why not Kafka transactions: an exactly-once sink
publishes only when a checkpoint completes, so each regeneration round trip (job →
questions → LLM worker → answers → job) would wait for a checkpoint (30 s by
default) and every consumer would have to read_committed. Instead the replay after a
restore is made harmless: keyed state drops any answer whose attempt was already
scored and closes a question once its final result is out, so a replay re-emits at
most the same final result (same question, attempt, answer and score), which the
storage writer's upsert on (run, question_id) collapses into one row. (A first attempt
that is final at once skips the state altogether: see Rules.final_without_state.) The
transactional mode is there (`--flink.delivery exactly-once`) for consumers that cannot
de-duplicate.

Run it locally on a MiniCluster with `python -m qarun_flink.job --run demo
--kafka.bootstrap-servers 127.0.0.1:9092` (QARUN_FLINK__CONNECTOR_JAR names the Kafka
connector jar);
on a session cluster it is the same module started by Flink's PythonDriver
(flink/deploy/flinksessionjob.yaml).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pyflink.common import Configuration, JobStatus, Row, Time
from pyflink.common.job_client import JobClient
from pyflink.common.typeinfo import Types
from pyflink.datastream import (
    AsyncDataStream,
    CheckpointingMode,
    DataStream,
    ExternalizedCheckpointRetention,
    StreamExecutionEnvironment,
)
from pyflink.datastream.functions import (
    AsyncFunction,
    KeyedProcessFunction,
    MapFunction,
    RuntimeContext,
)
from pyflink.datastream.output_tag import OutputTag
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table import DataTypes, StreamTableEnvironment, Table
from pyflink.table.expressions import col, lit
from pyflink.table.udf import ScalarFunction, udf

from qarun_core.messages import (
    Answer,
    DeadLetter,
    DeadLetterReason,
    PoisonMessageError,
    ScoredAttempt,
)
from qarun_core.spec import ScoringMethod
from qarun_flink.metrics import RunMetrics, _Sum
from qarun_flink.params import Delivery, JobParams, ParamError, StartingOffsets, parse
from qarun_flink.routing import Decision, KeyState, MetricEvent, Outcome, Rules, decide
from qarun_flink.scorers import AsyncScorer, Pair, Scorer, make_scorer

log = logging.getLogger("qarun_flink")

# Records between operators. Kafka-bound records are (key, value) rows; a scored
# answer crosses the key_by shuffle as (key, answer JSON, score, error).
KV = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.STRING()])
# The side outputs' own copy: a type used as an operator's output_type holds Java
# objects in its field types, which OutputTag does not clear when a function that
# names the tag (Route names DLQ, QUESTIONS) is pickled.
KV_TAG = Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.STRING()])
SCORED = Types.TUPLE([Types.STRING(), Types.STRING(), Types.DOUBLE(), Types.STRING()])
# Named: the metrics window reads them as table columns (improvement NULL on attempt 1).
EVENT = Types.ROW_NAMED(
    ["run", "attempt", "score", "improvement", "outcome"],
    [Types.STRING(), Types.INT(), Types.DOUBLE(), Types.DOUBLE(), Types.STRING()],
)

DLQ = OutputTag("dlq", KV_TAG)
QUESTIONS = OutputTag("questions", KV_TAG)
EVENTS = OutputTag("events", EVENT)

# Settle's result per answer: where it goes (Dest), the record to send and, for a
# final result, its metric event. For KEYED, k is "run/question_id", v the answer.
# v stays bytes from Python to the Kafka sinks: as a STRING, the JVM decoded and
# re-encoded every (1-2 kB) record at each table/stream conversion and copy, and
# that was the JVM's largest cost (profiled).
SETTLED_FIELDS = [
    ("dest", DataTypes.STRING()),
    ("k", DataTypes.STRING()),
    ("v", DataTypes.BYTES()),
    ("score", DataTypes.DOUBLE()),
    ("run", DataTypes.STRING()),
    ("attempt", DataTypes.INT()),
    ("improvement", DataTypes.DOUBLE()),
    ("outcome", DataTypes.STRING()),
]
SETTLED = DataTypes.ROW([DataTypes.FIELD(name, kind) for name, kind in SETTLED_FIELDS])


class Dest:
    RESULTS = "results"
    DLQ = "dlq"
    KEYED = "keyed"  # the outcome depends on the question's keyed state


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
    # First-attempt finals come from Settle (SQL), the rest from Route (DataStream).
    tables.create_temporary_view("routed_events", events)
    events_sql = f"""
        SELECT run, attempt, score, improvement, outcome, PROCTIME() AS pt FROM (
            SELECT run, attempt, score, improvement, outcome FROM settled
            WHERE dest = '{Dest.RESULTS}'
            UNION ALL
            SELECT run, attempt, score, improvement, outcome FROM routed_events)"""  # noqa: S608
    tables.create_temporary_view("events", tables.sql_query(events_sql))
    per_attempt = ",\n".join(
        f"COUNT(*) FILTER (WHERE attempt = {a}), SUM(score) FILTER (WHERE attempt = {a}), "
        f"COUNT(*) FILTER (WHERE attempt = {a} AND outcome <> '{Outcome.REGENERATE}'), "
        f"COUNT(improvement) FILTER (WHERE attempt = {a}), "
        f"SUM(improvement) FILTER (WHERE attempt = {a})"
        for a in range(1, params.max_attempts + 1)
    )
    outcomes = ", ".join(
        f"COUNT(*) FILTER (WHERE outcome = '{o}')"
        for o in (Outcome.VALIDATED, Outcome.REGENERATE, Outcome.EXHAUSTED)
    )
    # Only integers and Outcome constants are interpolated: no text from outside.
    window = tables.sql_query(f"""
        SELECT run, window_start, window_end, COUNT(*), SUM(score), SUM(score * score), {outcomes},
            {per_attempt}
        FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(pt),
            INTERVAL '{_ms(params.metrics_window_seconds) / 1000:.3f}' SECOND(9, 3)))
        WHERE outcome <> '{Outcome.DUPLICATE}'
        GROUP BY run, window_start, window_end""")  # noqa: S608
    rows = tables.to_data_stream(window)
    return rows.map(MetricsMessage(params), output_type=KV).name("run metrics")


def judge(parsed: DataStream, params: JobParams) -> DataStream:
    # The judge waits on an LLM: async I/O keeps many calls in flight per subtask.
    # Ordered, so that a replay meets answers in the order it did the first time.
    return AsyncDataStream.ordered_wait(
        parsed,
        JudgeAnswers(params),
        Time.milliseconds(_ms(params.judge_timeout_seconds * 4)),
        params.judge_concurrency,
        SCORED,
    ).name("score (judge)")


def settle_udf(params: JobParams) -> Any:
    """A pandas UDF: Arrow batches of raw answers in, a SETTLED row per answer out."""
    return udf(SettleBatch(params), result_type=SETTLED, func_type="pandas")


def configure(env: StreamExecutionEnvironment, params: JobParams) -> None:
    env.set_parallelism(params.parallelism)
    env.enable_checkpointing(
        _ms(params.checkpoint_interval_seconds), CheckpointingMode.EXACTLY_ONCE
    )
    checkpoints = env.get_checkpoint_config()
    # Kept when the job is cancelled or killed, so that it can be restored from.
    checkpoints.set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    )
    checkpoints.set_min_pause_between_checkpoints(
        min(1000, _ms(params.checkpoint_interval_seconds))
    )
    # A Python UDF worker runs the interpreter found on PATH unless told otherwise.
    env.set_python_executable(sys.executable)
    if jar := params.flink.connector_jar:  # local runs; images have it in lib/
        env.add_jars("file://" + os.path.abspath(jar))


def flink_configuration(params: JobParams) -> Configuration:
    config = Configuration()
    if params.checkpoint_dir:
        config.set_string("execution.checkpointing.dir", params.checkpoint_dir)
    if params.restore_from:
        config.set_string("execution.state-recovery.path", params.restore_from)
    # Bundles are flushed at least this often: the latency a record spends in each
    # Python operator when traffic is light (Flink's default is one second). At 200
    # answers/s the scoring stage's p50 was 128 ms with 100 ms bundles on 2 subtasks,
    # 71-79 ms with 50 ms bundles on 1; lexical at full load (2 subtasks, 100 against
    # 50 ms) moved within noise: 8,499 and 10,272 records/s, 43.2 and 44.7 CPU-s per
    # 100,000 answers.
    config.set_string("python.fn-execution.bundle.time", str(params.bundle_time_ms))
    # Chained operators hand records over without a defensive copy, which for the
    # table/stream conversions here cost a serializer copy of every record (profiled).
    # Safe: no function in the job keeps a record after passing it on (the Python
    # ones get serialized copies, the SQL ones copy what they buffer).
    config.set_string("pipeline.object-reuse", "true")
    return config


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
            'connector' = 'kafka', 'topic' = {_sql(params.answers_topic)},
            'properties.bootstrap.servers' = {_sql(params.bootstrap)},
            'properties.group.id' = {_sql(params.group_id)},
            'key.format' = 'raw', 'key.fields' = 'k',
            'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY',
            {startup}{bounded}
        )"""


def sink_ddl(name: str, topic: str, params: JobParams) -> str:
    if params.delivery is Delivery.EXACTLY_ONCE:
        delivery = (
            "'sink.delivery-guarantee' = 'exactly-once', "
            f"'sink.transactional-id-prefix' = {_sql(f'qarun-{params.run}-{name}')}, "
            "'properties.transaction.timeout.ms' = '900000'"
        )
    else:
        delivery = "'sink.delivery-guarantee' = 'at-least-once'"
    # batch.size: with the default 16 KiB a produce request carried about ten results,
    # and the producers' network threads were a third of the job's JVM samples
    # (profiled); 256 KiB halved the broker's CPU. linger.ms bounds the wait when idle.
    return f"""
        CREATE TEMPORARY TABLE {name} (k STRING, v BYTES) WITH (
            'connector' = 'kafka', 'topic' = {_sql(topic)},
            'properties.bootstrap.servers' = {_sql(params.bootstrap)},
            'key.format' = 'raw', 'key.fields' = 'k',
            'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY',
            'properties.linger.ms' = '5', 'properties.batch.size' = '262144', {delivery}
        )"""


class Settle:
    """Raw answers → where each goes: parsed, scored and settled when final at once.

    Plain Python (tested without Flink); SettleBatch is its pandas UDF adapter. A
    batch is scored in one scorer call (score_many), so the embedding model encodes
    whole batches.
    """

    def __init__(self, params: JobParams, scorer: Scorer | None) -> None:
        self.run = params.run
        self.topic = params.answers_topic
        self.rules = _rules(params)
        self.scorer = scorer  # None: scored later (judge)

    def settle(
        self,
        keys: Sequence[bytes | None],
        payloads: Sequence[bytes | None],
        partitions: Sequence[int],
        offsets: Sequence[int],
    ) -> list[tuple[Any, ...]]:
        parsed: list[Answer | tuple[Any, ...]] = [
            self._parse(*record) for record in zip(keys, payloads, partitions, offsets, strict=True)
        ]
        answers = [item for item in parsed if isinstance(item, Answer)]
        scores = iter(self._scores(answers))
        return [
            self._route(item, next(scores), payload) if isinstance(item, Answer) else item
            for item, payload in zip(parsed, payloads, strict=True)
        ]

    def _scores(self, answers: list[Answer]) -> list[float]:
        if self.scorer is None:
            return [math.nan] * len(answers)
        return self.scorer.score_many([_pair_of(answer) for answer in answers])

    def _parse(
        self, key: bytes | None, payload: bytes | None, partition: int, offset: int
    ) -> Answer | tuple[Any, ...]:
        try:
            answer = Answer.from_bytes(payload)
            if answer.run != self.run:
                raise PoisonMessageError(
                    DeadLetterReason.BAD_SCHEMA,
                    f"run {answer.run!r} on a topic of run {self.run!r}",
                )
        except PoisonMessageError as poison:
            letter = DeadLetter.of(
                run=self.run,
                reason=poison.reason,
                detail=poison.detail,
                payload=payload,
                key=key,
                topic=self.topic,
                partition=int(partition),
                offset=int(offset),
            )
            return (Dest.DLQ, letter.question_id, letter.to_bytes(), *_NO_EVENT)
        return answer

    def _route(self, answer: Answer, score_: float, payload: bytes | None) -> tuple[Any, ...]:
        if not self.rules.final_without_state(answer.attempt, score_):
            key = f"{answer.run}/{answer.question_id}"
            return (Dest.KEYED, key, payload, score_, *_NO_EVENT[1:])
        # Final at once: no state to read, and none to keep (see Rules).
        decision = decide(answer, score_, KeyState(), self.rules)
        result, event = decision.result, decision.event
        assert result is not None and event is not None  # a final decision has both
        return (
            Dest.RESULTS,
            result.question_id,
            result.to_bytes(),
            event.score,
            event.run,
            event.attempt,
            event.improvement,
            event.outcome.value,
        )


# score, run, attempt, improvement, outcome of a row that is no final result
_NO_EVENT: tuple[Any, ...] = (None, None, None, None, None)


class SettleBatch(ScalarFunction):  # type: ignore[misc]
    def __init__(self, params: JobParams) -> None:
        self.params = params
        self.settler: Settle | None = None

    def open(self, function_context: Any) -> None:
        # The embedding model loads once per worker; the judge scores after Settle.
        scored_here = self.params.scorer is not ScoringMethod.JUDGE
        scorer = make_scorer(self.params.scorer.value) if scored_here else None
        self.settler = Settle(self.params, scorer)

    def eval(
        self, keys: pd.Series, payloads: pd.Series, partitions: pd.Series, offsets: pd.Series
    ) -> pd.DataFrame:
        assert self.settler is not None
        rows = self.settler.settle(
            keys.tolist(), payloads.tolist(), partitions.tolist(), offsets.tolist()
        )
        return pd.DataFrame.from_records(rows, columns=[name for name, _ in SETTLED_FIELDS])


def _rules(params: JobParams) -> Rules:
    return Rules(
        params.threshold,
        params.max_attempts,
        params.scorer.value,
        deterministic=params.scorer is not ScoringMethod.JUDGE,
    )


def _pair(answer_json: str | bytes) -> Pair:
    return _pair_of(Answer.model_validate_json(answer_json))


def _pair_of(answer: Answer) -> Pair:
    question = f"{answer.title}\n{answer.content}".strip()
    return Pair(question=question, answer=answer.answer, reference=answer.best_answer)


class JudgeAnswers(AsyncFunction):  # type: ignore[misc]
    def __init__(self, params: JobParams) -> None:
        self.options = {
            "llm_base_url": params.llm_base_url,
            "llm_model": params.llm_model,
            "timeout": params.judge_timeout_seconds,
        }
        self.scorer: AsyncScorer | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        scorer = make_scorer("judge", **self.options)  # type: ignore[arg-type]
        assert isinstance(scorer, AsyncScorer)
        self.scorer = scorer

    async def async_invoke(self, value: tuple[str, str, float, str]) -> list[Any]:
        assert self.scorer is not None
        try:
            score_ = await self.scorer.ascore(_pair(value[1]))
        except Exception as error:  # the scorer gave up: a dead letter, not a failed job
            return [(value[0], value[1], math.nan, f"{type(error).__name__}: {error}"[:500])]
        return [(value[0], value[1], score_, "")]

    def timeout(self, value: tuple[str, str, float, str]) -> list[Any]:
        return [(value[0], value[1], math.nan, "judge timed out")]


class Route(KeyedProcessFunction):  # type: ignore[misc]
    """Applies routing.decide with the question's KeyState from Flink keyed state."""

    def __init__(self, params: JobParams) -> None:
        self.rules = _rules(params)
        self.run = params.run
        self.topic = params.answers_topic

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("question", Types.STRING()))

    def process_element(self, value: tuple[str, str, float, str], ctx: Any) -> Iterator[Any]:
        key, answer_json, score_, error = value
        if error:
            yield DLQ, self._dead_letter(key, answer_json, error)
            return
        answer = Answer.model_validate_json(answer_json)
        if self.rules.final_without_state(answer.attempt, score_):
            # The judge scores after Settle, so its answers are settled here (never
            # final without state today: Rules.deterministic is False for it).
            yield from _emit(decide(answer, score_, KeyState(), self.rules))
            return
        stored = self.state.value()
        state = _load_state(stored) if stored else KeyState()
        decision = decide(answer, score_, state, self.rules)
        if decision.outcome is Outcome.DUPLICATE:
            return
        self.state.update(_dump_state(decision.state))
        yield from _emit(decision)

    def _dead_letter(self, key: str, answer_json: str, error: str) -> Row:
        letter = DeadLetter.of(
            run=self.run,
            reason=DeadLetterReason.PERMANENT_ERROR,
            detail=f"scoring failed: {error}",
            payload=answer_json.encode(),
            key=key.partition("/")[2].encode(),
            topic=self.topic,
        )
        return Row(k=letter.question_id, v=letter.to_bytes().decode())


def _emit(decision: Decision) -> Iterator[Any]:
    if decision.result is not None:
        yield Row(k=decision.result.question_id, v=decision.result.to_bytes().decode())
    if decision.question is not None:
        question = decision.question
        yield QUESTIONS, Row(k=question.question_id, v=question.to_bytes().decode())
    if decision.event is not None:
        yield EVENTS, _event_row(decision.event)


# Keyed state is stored as JSON text: readable in a savepoint and stable across
# versions of the code, unlike a pickled dataclass.
def _dump_state(state: KeyState) -> str:
    best = state.best.model_dump(mode="json") if state.best else None
    return json.dumps({"last_attempt": state.last_attempt, "best": best, "done": state.done})


def _load_state(text: str) -> KeyState:
    data = json.loads(text)
    best = ScoredAttempt.model_validate(data["best"]) if data["best"] else None
    return KeyState(last_attempt=data["last_attempt"], best=best, done=data["done"])


def _event_row(event: MetricEvent) -> Row:
    return Row(event.run, event.attempt, event.score, event.improvement, event.outcome.value)


class MetricsMessage(MapFunction):  # type: ignore[misc]
    """One aggregated window row of run_metrics → the run's metrics record."""

    def __init__(self, params: JobParams) -> None:
        self.attempts = range(1, params.max_attempts + 1)

    def map(self, row: Row) -> Row:
        run, start, end, count, total, squares, *rest = row
        metrics = RunMetrics(count=count, total=total or 0.0, squares=squares or 0.0)
        for outcome, n in zip(
            (Outcome.VALIDATED, Outcome.REGENERATE, Outcome.EXHAUSTED), rest[:3], strict=True
        ):
            if n:
                metrics.outcomes[outcome] = n
        for attempt, offset in zip(self.attempts, range(3, len(rest), 5), strict=True):
            scored, score_sum, final, improved, improvement = rest[offset : offset + 5]
            if scored:
                metrics.scored_by_attempt[attempt] = _Sum(scored, score_sum)
            if final:
                metrics.final_by_attempt[attempt] = final
            if improved:
                metrics.improvement_by_attempt[attempt] = _Sum(improved, improvement)
        return Row(k=run, v=metrics.to_json(run, _epoch_ms(start), _epoch_ms(end)))


def _epoch_ms(moment: datetime) -> int:
    # A naive window bound is UTC wall-clock time (table.local-time-zone, build_job).
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# PyFlink reads this when a job is submitted. Its default on a local MiniCluster,
# "loopback", runs the Python functions of every subtask inside the submitting
# process, so all subtasks share one GIL; "process" gives each its own worker process,
# as a Flink cluster does. Lexical at parallelism 2, back to back on 2 cores: 10,238
# records/s loopback, 12,951 process.
PYTHON_WORKER_MODE = "_python_worker_execution_mode"


def environment(params: JobParams, rest_port: int = 0) -> StreamExecutionEnvironment:
    """`rest_port`: where a local MiniCluster serves its REST API (0: Flink's choice)."""
    os.environ.setdefault(PYTHON_WORKER_MODE, "process")
    config = flink_configuration(params)
    if rest_port:
        config.set_string("rest.bind-port", str(rest_port))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    configure(env, params)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        params = parse(sys.argv[1:] if argv is None else argv)
    except ParamError as error:
        print(f"qarun-flink: {error}", file=sys.stderr)
        return 2
    rest_port = free_port() if params.ready_file else 0
    env = environment(params, rest_port)
    build_job(env, params)
    log.info(
        "submitting qarun-scoring-%s: scorer=%s threshold=%s max_attempts=%s parallelism=%s",
        params.run,
        params.scorer,
        params.threshold,
        params.max_attempts,
        params.parallelism,
    )
    job = env.execute_async(f"qarun-scoring-{params.run}")
    if params.ready_file:
        announce_running(job, Path(params.ready_file), rest_port)
    if not attached(env):
        # Submitted through a session cluster's REST API (how QARun's operator and the
        # Flink operator submit): main runs detached inside the JobManager, its job
        # client cannot fetch the result, and the job runs on after main returns.
        log.info("submitted job %s detached", job.get_job_id())
        return 0
    job.get_job_execution_result().result()
    return 0


def attached(env: StreamExecutionEnvironment) -> bool:
    """Whether the submitter waits for the job (a local MiniCluster run, `flink run`
    without -d) or not (REST submission, `flink run -d`): Flink's execution.attached,
    false unless set."""
    config = env._j_stream_execution_environment.getConfiguration().toMap()
    return str(config.get("execution.attached", "false")).lower() == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def announce_running(job: JobClient, ready_file: Path, rest_port: int) -> None:
    """Write `ready_file` once every task of the job runs (a local runner holds the
    generator back until then: questions sent earlier only queue, and the backlog makes
    a burst). A task runs once its operators are open, i.e. its Python worker is up: the
    job itself reports RUNNING before that, 18 s before on a slow host."""
    url = f"http://127.0.0.1:{rest_port}/jobs/{job.get_job_id()}"
    while True:
        status = job.get_job_status().result()
        if status.is_globally_terminal_state():
            return  # the job's result says why
        if status is JobStatus.RUNNING and (tasks := running_tasks(url)) is not None:
            break
        time.sleep(0.2)
    partial = ready_file.with_suffix(".partial")
    partial.write_text(f"{job.get_job_id()}\n{tasks} tasks running\n")
    partial.replace(ready_file)


def running_tasks(url: str) -> int | None:
    """How many tasks the job has when all of them run (Flink's REST API); else None."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our cluster
            vertices = json.load(response)["vertices"]
    except OSError:
        return None  # the REST endpoint is not up yet
    if not vertices or any(v["tasks"].get("RUNNING", 0) != v["parallelism"] for v in vertices):
        return None
    return sum(int(v["parallelism"]) for v in vertices)


if __name__ == "__main__":
    sys.exit(main())
