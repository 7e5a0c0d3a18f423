"""The Flink execution environment of the scoring job: checkpoints, bundles, workers."""

from __future__ import annotations

import os
import sys

from pyflink.common import Configuration
from pyflink.datastream import (
    CheckpointingMode,
    ExternalizedCheckpointRetention,
    StreamExecutionEnvironment,
)

from qarun_flink.params import JobParams

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


def configure(env: StreamExecutionEnvironment, params: JobParams) -> None:
    env.set_parallelism(params.parallelism)
    env.enable_checkpointing(ms(params.checkpoint_interval_seconds), CheckpointingMode.EXACTLY_ONCE)
    checkpoints = env.get_checkpoint_config()
    # Kept when the job is cancelled or killed, so that it can be restored from.
    checkpoints.set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    )
    checkpoints.set_min_pause_between_checkpoints(min(1000, ms(params.checkpoint_interval_seconds)))
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


def attached(env: StreamExecutionEnvironment) -> bool:
    """Whether the submitter waits for the job (a local MiniCluster run, `flink run`
    without -d) or not (REST submission, `flink run -d`): Flink's execution.attached,
    false unless set."""
    config = env._j_stream_execution_environment.getConfiguration().toMap()
    return str(config.get("execution.attached", "false")).lower() == "true"


def ms(seconds: float) -> int:
    """Seconds as Flink's milliseconds, at least one."""
    return max(1, round(seconds * 1000))
