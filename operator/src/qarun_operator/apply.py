"""Realize the desired manifests: server-side apply, replace a changed generator Job, and
delete children the plan no longer wants (e.g. a retry tier removed by a spec change)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from qarun_core import plan as p
from qarun_core.summary import RunSummary
from qarun_operator import objects as o
from qarun_operator.kube import Kube
from qarun_operator.objects import JSON
from qarun_operator.observe import Children, job_finished
from qarun_operator.render import TEMPLATE_HASH


class Pending(Exception):  # noqa: N818 - a state, not a failure
    """A child cannot be applied yet (e.g. the old generator Job is still being deleted)."""


def apply_all(kube: Kube, manifests: list[JSON], owner_uid: str) -> list[str]:
    """Apply every manifest; returns what changed beyond a plain apply, for events."""
    notes: list[str] = []
    for obj in manifests:
        if obj["kind"] == "Job":
            note = _ensure_job(kube, obj)
            if note:
                notes.append(note)
        else:
            kube.apply(obj)
    if manifests:
        notes += _prune(kube, manifests, owner_uid)
    return notes


def _ensure_job(kube: Kube, obj: JSON) -> str | None:
    meta = obj["metadata"]
    current = kube.get(o.JOB, meta["namespace"], meta["name"])
    if current is None:
        kube.apply(obj)
        return None
    if current["metadata"].get("deletionTimestamp"):
        raise Pending(f"Job {meta['name']} is being deleted")
    want = meta["annotations"][TEMPLATE_HASH]
    have = current["metadata"].get("annotations", {}).get(TEMPLATE_HASH)
    if have == want or job_finished(current):
        return None  # unchanged, or finished: a finished generator is never re-run
    kube.delete(o.JOB, meta["namespace"], meta["name"], uid=current["metadata"]["uid"])
    if kube.get(o.JOB, meta["namespace"], meta["name"]) is not None:
        raise Pending(f"Job {meta['name']} is being replaced")
    kube.apply(obj)
    return f"replaced Job {meta['name']} (its pod template changed)"


def _prune(kube: Kube, manifests: list[JSON], owner_uid: str) -> list[str]:
    namespace = manifests[0]["metadata"]["namespace"]
    run = manifests[0]["metadata"]["labels"][p.LABEL_RUN]
    wanted = {(o["kind"], o["metadata"]["name"]) for o in manifests}
    notes = []
    for kind in o.CHILD_KINDS:
        for obj in kube.list(kind, namespace, f"{p.LABEL_RUN}={run}"):
            meta = obj["metadata"]
            owned = any(r.get("uid") == owner_uid for r in meta.get("ownerReferences", []))
            if owned and (kind.kind, meta["name"]) not in wanted:
                kube.delete(kind, namespace, meta["name"], uid=meta["uid"])
                notes.append(f"deleted {kind.kind} {meta['name']} (no longer planned)")
    return notes


def read_children(kube: Kube, run: p.RunPlan) -> Children:
    selector = f"{p.LABEL_RUN}={run.run}"

    def by_name(kind: o.ResourceKind) -> dict[str, JSON]:
        return {o["metadata"]["name"]: o for o in kube.list(kind, run.namespace, selector)}

    sessions = by_name(o.FLINK_DEPLOYMENT)
    if not run.flink.managed:
        external = kube.get(o.FLINK_DEPLOYMENT, run.namespace, run.flink.session)
        if external is not None:
            sessions[run.flink.session] = external
    return Children(
        topics=by_name(o.KAFKA_TOPIC),
        deployments=by_name(o.DEPLOYMENT),
        jobs=by_name(o.JOB),
        flink_sessions=sessions,
        flink_jobs=by_name(o.FLINK_SESSION_JOB),
    )


def read_summary(url: str, timeout: float) -> tuple[RunSummary | None, str | None]:
    """The run's summary from its API, or the reason it could not be read."""
    if not url:
        return None, None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - config URL
            return RunSummary.model_validate(json.loads(response.read())), None
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None, None
        return None, f"{url}: {error}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, f"{url}: {error}"
