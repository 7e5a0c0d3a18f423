"""`python -m qarun_devstack up`: start the local infrastructure and say where it is.
`python -m qarun_devstack cluster`: a real single-node Kubernetes cluster (`make cluster`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from qarun_devstack.cluster import RealCluster
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
    node = sub.add_parser("cluster", help="a real single-node cluster until Ctrl-C")
    node.add_argument("--check", action="store_true", help="stop again right after start-up")
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.command == "cluster":
        return _cluster(stop, check=args.check)
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


def _cluster(stop: threading.Event, check: bool) -> int:
    try:
        with RealCluster() as cluster:
            print("A real single-node Kubernetes cluster is up:")
            for step, seconds in cluster.startup_seconds.items():
                print(f"  {step:<44} {seconds:6.1f} s")
            print(f"  node IP      {cluster.node_ip}")
            print(f"  images       {cluster.registry}/qarun/<name>:<tag> (make images fills it)")
            print(f"  push to      {cluster.registry_push} (plain HTTP)")
            print(f"  logs         {cluster.workdir}")
            print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
            if not check:
                print("Press Ctrl-C to stop (it removes everything it set up).", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    stop.wait()
        if cluster.leftovers:
            print(f"error: left on the host: {cluster.leftovers}", file=sys.stderr)
            return 1
    except (MissingComponentError, ServiceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
