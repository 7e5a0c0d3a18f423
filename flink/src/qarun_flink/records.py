"""The records that cross the scoring job's operators, and their Flink types."""

from __future__ import annotations

from pyflink.common.typeinfo import Types
from pyflink.datastream.output_tag import OutputTag
from pyflink.table import DataTypes

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
