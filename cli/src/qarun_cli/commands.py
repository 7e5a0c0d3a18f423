"""What each `qarun` sub-command does; main.py only parses the arguments."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from collections.abc import Iterator

import psycopg
from psycopg import sql

from qarun_cli import deadletters
from qarun_cli import report as reports
from qarun_cli.errors import CLIError
from qarun_cli.state import RunDir
from qarun_core.keys import Table
from qarun_core.spec import validate_name
from qarun_core.summary import RunSummary
from qarun_core.topics import RunTopics
from qarun_devstack.paths import MissingComponentError
from qarun_devstack.postgres import Postgres
from qarun_devstack.process import ServiceError


def _run_dir(name: str) -> RunDir:
    try:
        validate_name(name)
    except ValueError as error:
        raise CLIError(f"RUN {name!r}: {error}", code=2) from None
    run_dir = RunDir(name)
    if not run_dir.exists():
        raise CLIError(
            f"no local run named {name!r} in {run_dir.path.parent}; "
            "start one with `qarun run -f FILE --local`"
        )
    return run_dir


@contextlib.contextmanager
def database(run_dir: RunDir) -> Iterator[str]:
    """The run's PostgreSQL DSN: the live run's, or a server started on its kept data."""
    live = run_dir.live()
    if live is not None:
        yield live.postgres
        return
    if not (run_dir.stack / "postgres" / "data" / "PG_VERSION").exists():
        raise CLIError(f"run {run_dir.run} has no database yet (it never got that far)")
    server = Postgres(run_dir.stack / "postgres")
    try:
        server.start()
    except (MissingComponentError, ServiceError) as error:
        raise CLIError(f"cannot start the run's PostgreSQL: {error}") from None
    try:
        yield server.dsn
    finally:
        server.stop()


def run(args: argparse.Namespace) -> int:
    from qarun_cli.runner import LocalRunner, Options, parse_faults  # noqa: PLC0415
    from qarun_cli.sim_options import parse_limits  # noqa: PLC0415
    from qarun_cli.specfile import load  # noqa: PLC0415

    specfile = load(args.file)
    if not (args.local or args.k8s):
        raise CLIError(
            "say where: --local (this machine) or --k8s (helm and kubectl on a cluster); "
            f"on a cluster with the stack installed, `kubectl apply -f {args.file}` is enough",
            code=2,
        )
    if args.k8s:
        from qarun_cli.cluster_demo import run_on_cluster  # noqa: PLC0415

        return run_on_cluster(
            args.file,
            kubeconfig=args.kubeconfig,
            values=args.values,
            namespace=args.namespace,
            total=args.total,
            timeout=args.timeout,
        )
    spec = specfile.spec
    if args.total is not None:
        limit = spec.dataset.limit
        traffic = spec.traffic.model_copy(update={"total": args.total, "duration_seconds": 0})
        dataset = spec.dataset.model_copy(update={"limit": max(limit, args.total) if limit else 0})
        spec = spec.model_copy(update={"traffic": traffic, "dataset": dataset})
    if args.rate is not None:
        if args.rate <= 0:
            raise CLIError("--rate must be above 0", code=2)
        spec = spec.model_copy(
            update={"traffic": spec.traffic.model_copy(update={"rate_per_second": args.rate})}
        )
    if args.replicas is not None:
        spec = spec.model_copy(
            update={"workers": spec.workers.model_copy(update={"replicas": args.replicas})}
        )
    specfile = dataclasses.replace(specfile, spec=spec)
    options = Options(
        llm_base_url=args.llm_base_url or "",
        sim_latency=args.sim_latency,
        sim_faults=parse_faults(args.sim_faults),
        sim_limits=parse_limits(args.sim_limits),
        serve=args.serve,
        timeout=args.timeout,
        fresh=args.fresh,
    )
    run_dir = RunDir(specfile.name)
    if args.replicas is not None and run_dir.exists():
        run_dir.want_replicas(args.replicas)
    return LocalRunner(specfile, options, run_dir).run()


def status(args: argparse.Namespace) -> int:
    """The runner's last status.json: its phase and processes, and the run's summary as
    the runner last read it (qarun_core.summary.RunSummary, the API's shape)."""
    run_dir = _run_dir(args.run)
    live = run_dir.live()
    try:
        data = json.loads((run_dir.path / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        data = {"run": args.run, "phase": "Pending", "processes": {}}
    if live is None and data.get("phase") == "Running":
        data["phase"] = "Stopped"  # the runner was killed before it could say so
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"run {args.run}: {data.get('phase')}" + (f" (pid {live.pid})" if live else ""))
    if "summary" in data:
        summary = RunSummary.model_validate(data["summary"])
        p = summary.progress
        print(
            f"  total {p.total}  sent {p.sent}  answered {p.answered}  validated "
            f"{p.validated}  exhausted {p.exhausted}  failed {p.failed}  retries "
            f"{summary.retries}  throughput {data.get('rate', 0.0):.1f}/s"
        )
    for name, proc in data.get("processes", {}).items():
        print(
            f"  {name:<15} {proc.get('alive', 0)}/{proc.get('replicas', 0)} running, "
            f"{proc.get('restarts', 0)} restarts"
        )
    if live is not None and live.extra.get("dashboard"):
        print(f"  dashboard {live.extra['dashboard']}")
    print(f"  logs {run_dir.logs}")
    return 0


def report(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args.run)
    live = run_dir.live()
    with database(run_dir) as dsn:
        summary = reports.summarize(dsn, args.run, live.redis if live else "")
    if args.json:
        print(summary.model_dump_json(by_alias=True, indent=2))
    else:
        print(reports.render(summary))
    return 0


def scale(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args.run)
    before = run_dir.wanted_replicas()
    run_dir.want_replicas(args.replicas)
    live = run_dir.live()
    when = "now" if live is not None else "when the run starts again"
    was = "" if before is None else f" (was {before})"
    print(f"run {args.run}: llm-worker replicas set to {args.replicas}{was}, applied {when}")
    return 0


def dlq(args: argparse.Namespace) -> int:
    run_dir = _run_dir(args.run)
    live = run_dir.live()
    if live is not None:
        letters = deadletters.read_dead_letters(live.kafka, RunTopics(args.run).dlq)
    else:
        try:
            text = run_dir.dead_letters.read_text()
        except FileNotFoundError:
            text = ""
        letters = [json.loads(line) for line in text.splitlines() if line.strip()]
    if args.json:
        for letter in letters[: args.limit]:
            print(json.dumps(letter))
    else:
        print(deadletters.render(letters, args.limit))
    return 0


def replay(args: argparse.Namespace) -> int:
    """Live run: re-publish dead letters. Stopped run: forget the chosen results so the
    next `qarun run` of the same file asks those questions again."""
    run_dir = _run_dir(args.run)
    live = run_dir.live()
    statuses = [] if args.no_dead_letters else ["failed"]
    if args.exhausted:
        statuses.append("exhausted")
    if not statuses:
        raise CLIError("nothing to replay: --no-dead-letters without --exhausted", code=2)
    if live is not None:
        if args.exhausted:
            raise CLIError(
                "exhausted questions are closed in the live scoring job; stop the run "
                "(Ctrl-C), replay --exhausted, then run it again",
                code=2,
            )
        letters = deadletters.read_dead_letters(live.kafka, RunTopics(args.run).dlq)
        questions = [q for q in map(deadletters.replayable, letters) if q is not None]
        unique = list({q.question_id: q for q in questions}.values())
        sent = deadletters.publish(live.kafka, RunTopics(args.run).questions, unique)
        skipped = len(letters) - len(questions)
        print(
            f"run {args.run}: re-sent {sent} questions from {len(letters)} dead letters"
            + (f" ({skipped} unreadable ones cannot be replayed)" if skipped else "")
        )
        return 0
    results = sql.Identifier(Table.RESULTS)
    with database(run_dir) as dsn, psycopg.connect(dsn) as conn:
        ids = [
            row[0]
            for row in conn.execute(
                sql.SQL("SELECT question_id FROM {} WHERE run = %s AND status = ANY(%s)").format(
                    results
                ),
                (args.run, statuses),
            )
        ]
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE run = %s AND question_id = ANY(%s)").format(
                sql.Identifier(Table.ATTEMPTS)
            ),
            (args.run, ids),
        )
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE run = %s AND question_id = ANY(%s)").format(results),
            (args.run, ids),
        )
    print(
        f"run {args.run}: {len(ids)} {' and '.join(statuses)} questions will be asked again "
        "by the next `qarun run` of this run"
    )
    return 0
