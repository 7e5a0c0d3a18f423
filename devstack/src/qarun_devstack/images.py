"""The stack's images as the real node pulls them, built by scripts/build-images.sh.

Every image is `localhost:5001/qarun/<name>:<tag>`. `localhost:5001` is the name the
node's containerd pulls from (kind's local-registry convention); the node serves it
from the registry store the build script pushes to (.images/registry). The project's
images carry the charts' version (charts/qarun-stack/Chart.yaml appVersion, the
charts' default tag); the others carry their component's pinned version.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from qarun_devstack import paths

REGISTRY = "localhost:5001"
REGISTRY_PORT = 5001
PROJECT_IMAGES = ("operator", "workers", "flink")


def chart_tag() -> str:
    chart = (paths.ROOT / "charts" / "qarun-stack" / "Chart.yaml").read_text()
    found = re.search(r'^appVersion:\s*"?([^"\s]+)"?\s*$', chart, re.MULTILINE)
    if found is None:
        raise paths.MissingComponentError("no appVersion in charts/qarun-stack/Chart.yaml")
    return found.group(1)


def image_tag(name: str) -> str:
    if name in PROJECT_IMAGES:
        return chart_tag()
    v = paths.versions()
    tags = {
        "flink-base": v["FLINK_VERSION"],
        "kafka": v["KAFKA_VERSION"],
        "postgres": v["POSTGRES_IMAGE_VERSION"],
        "redis": v["REDIS_IMAGE_VERSION"],
        "coredns": v["COREDNS_VERSION"],
        "pause": v["KUBERNETES_VERSION"],
    }
    if name not in tags:
        raise KeyError(f"no image {name!r}: one of {[*PROJECT_IMAGES, *tags]}")
    return tags[name]


def image_ref(name: str) -> str:
    """What a pod spec names, e.g. image_ref('workers') = localhost:5001/qarun/workers:0.1.0."""
    return f"{REGISTRY}/qarun/{name}:{image_tag(name)}"


def registry_store() -> Path:
    """This checkout's images (they are built from its sources): QARUN_IMAGE_DIR,
    default .images/, holds the store; scripts/build-images.sh fills it."""
    return Path(os.environ.get("QARUN_IMAGE_DIR", paths.ROOT / ".images")) / "registry"


def _tag_link(name: str, tag: str) -> Path:
    return (
        registry_store() / "docker" / "registry" / "v2" / "repositories" / "qarun" / name
        / "_manifests" / "tags" / tag / "current" / "link"
    )  # fmt: skip


def pushed_digest(name: str, tag: str) -> str | None:
    """The manifest digest the store's tag points to (None: never pushed)."""
    link = _tag_link(name, tag)
    return link.read_text().strip() if link.exists() else None


def require_image(name: str) -> str:
    """image_ref(name), after checking that `make images` pushed it to the store."""
    link = _tag_link(name, image_tag(name))
    paths.require(link, f"image {image_ref(name)}", f"bash scripts/build-images.sh {name}")
    return image_ref(name)
