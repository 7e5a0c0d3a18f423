"""`qarun`: run a QARun on this machine and look at it.

    qarun run -f k8s/qarun.yaml --local     run it here: Kafka, Flink, PostgreSQL, Redis,
                                            the workers and the LLM simulator as processes
    qarun status RUN                        phase, progress and processes of a run
    qarun report RUN                        counts, scores, attempts, latency, tokens, cost
    qarun scale RUN N                       N LLM workers (applied within a second)
    qarun dlq RUN                           the dead letters, with their reasons
    qarun replay RUN                        send dead letters (or exhausted questions) again

On Kubernetes the same file is applied with `kubectl apply -f`, and the operator
realises the same plan; `kubectl scale qarun/RUN --replicas=N` scales it there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from qarun_cli import commands
from qarun_cli.errors import CLIError

EPILOG = """\
Run state (database, logs, the live run's endpoints) lives in $QARUN_STATE_DIR
(default ~/.local/state/qarun). The LLM API key is read from QARUN_LLM__API_KEY or
OPENAI_API_KEY only, never from a flag or the spec file.
"""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="qarun",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a QARun spec file on this machine",
        description="Run a QARun spec file end to end on this machine with real Kafka, a "
        "Flink MiniCluster, PostgreSQL and Redis, the pipeline workers as supervised "
        "processes and (unless --llm-base-url is given) the LLM simulator. Shows progress; "
        "Ctrl-C stops everything cleanly, and running the same file again resumes: "
        "questions already answered are not asked again.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("-f", "--file", required=True, type=Path, help="the QARun YAML file")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="run on this machine")
    where.add_argument(
        "--k8s",
        action="store_true",
        help="run on Kubernetes through helm and kubectl: this repository's real node "
        "(`make images` first), or the cluster of --kubeconfig",
    )
    run.add_argument("--kubeconfig", type=Path, help="--k8s: a cluster of your own (e.g. kind's)")
    run.add_argument(
        "--values", type=Path, action="append", default=[], help="--k8s: helm values files"
    )
    run.add_argument("--namespace", default="qarun", help="--k8s: the stack's namespace")
    run.add_argument("--total", type=_positive, help="questions to send (overrides spec)")
    run.add_argument("--rate", type=float, help="questions per second (overrides spec)")
    run.add_argument("--replicas", type=_positive, help="LLM workers (overrides spec)")
    run.add_argument(
        "--llm-base-url",
        help="a real OpenAI-compatible endpoint instead of the embedded simulator "
        "(also QARUN_LLM__BASE_URL); its key comes from QARUN_LLM__API_KEY",
    )
    run.add_argument(
        "--sim-latency", type=float, default=None, help="simulator: mean latency, seconds"
    )
    run.add_argument(
        "--sim-faults",
        default="",
        help="simulator: fault rates such as 429=0.3,503=0.1,timeout=0.01",
    )
    run.add_argument(
        "--sim-limits",
        default="",
        help="simulator: the provider's limits, such as capacity=200,mode=503,rpm=3000 "
        "(requests worked on at once, refused with 503 or 429 or queued (mode=slow) beyond "
        "them; requests and tokens (tpm=) a minute, answered with rate-limit headers)",
    )
    run.add_argument(
        "--serve",
        action="store_true",
        help="when the run is done, keep the API and dashboard up until Ctrl-C",
    )
    run.add_argument(
        "--timeout", type=float, default=0, help="give up after this many seconds (0 = never)"
    )
    run.add_argument(
        "--fresh", action="store_true", help="forget earlier results of this run first"
    )

    status = sub.add_parser(
        "status",
        help="phase, progress and processes of a run",
        description="Show a run's phase, progress counters and local processes.",
    )
    status.add_argument("run", metavar="RUN", help="the run's name (metadata.name)")
    status.add_argument("--json", action="store_true", help="print JSON")

    report = sub.add_parser(
        "report",
        help="the run's results as a table",
        description="Counts, score mean/sd, attempts distribution, improvement per attempt, "
        "latency p50/p95/p99, throughput, tokens and cost of a run (live or finished).",
    )
    report.add_argument("run", metavar="RUN", help="the run's name")
    report.add_argument("--json", action="store_true", help="print the summary as JSON")

    scale = sub.add_parser(
        "scale",
        help="set the number of LLM workers of a local run",
        description="Set the number of LLM worker processes of a local run; a live run "
        "applies it within a second, a stopped one on its next start. (On Kubernetes: "
        "kubectl scale qarun/RUN --replicas=N.)",
    )
    scale.add_argument("run", metavar="RUN", help="the run's name")
    scale.add_argument("replicas", metavar="N", type=_not_negative, help="LLM workers")

    dlq = sub.add_parser(
        "dlq",
        help="list a run's dead letters with their reasons",
        description="List the dead letters of a run (from its live dead-letter topic, or "
        "those saved when it stopped): question, attempt, reason, detail.",
    )
    dlq.add_argument("run", metavar="RUN", help="the run's name")
    dlq.add_argument("--limit", type=_positive, default=50, help="show at most this many")
    dlq.add_argument("--json", action="store_true", help="one JSON dead letter per line")

    replay = sub.add_parser(
        "replay",
        help="send dead letters or exhausted questions again",
        description="Send a live run's dead letters (the ones whose payload is a readable "
        "question) back to its questions topic, e.g. after fixing the endpoint; with "
        "--exhausted also the questions whose attempts ran out below the threshold.",
    )
    replay.add_argument("run", metavar="RUN", help="the run's name")
    replay.add_argument("--exhausted", action="store_true", help="also re-ask exhausted questions")
    replay.add_argument(
        "--no-dead-letters", action="store_true", help="do not re-send dead letters"
    )
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        handler = {
            "run": commands.run,
            "status": commands.status,
            "report": commands.report,
            "scale": commands.scale,
            "dlq": commands.dlq,
            "replay": commands.replay,
        }[args.command]
        return handler(args)
    except CLIError as error:
        print(f"qarun {args.command}: {error}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
