"""`python -m qarun_devstack up`: start the local infrastructure and say where it is."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from qarun_devstack.paths import MissingComponentError
from qarun_devstack.process import ServiceError
from qarun_devstack.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m qarun_devstack",
        description="Start QARun's local infrastructure (real Kafka, PostgreSQL, Redis, "
        "Flink wiring and a Kubernetes API server) on free loopback ports.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start everything and keep it running until Ctrl-C")
    up.add_argument("--no-kube", action="store_true", help="skip the Kubernetes control plane")
    up.add_argument("--check", action="store_true", help="stop again right after start-up")
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with LocalStack(with_kube=not args.no_kube) as stack:
            print("QARun local infrastructure is up:")
            for name, where in stack.endpoints().items():
                seconds = stack.startup_seconds.get(name)
                took = f"  (started in {seconds:.1f} s)" if seconds is not None else ""
                print(f"  {name:<11} {where}{took}")
            print(f"  logs        {stack.workdir}")
            if not args.check:
                print("Press Ctrl-C to stop.", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    stop.wait()
    except (MissingComponentError, ServiceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
