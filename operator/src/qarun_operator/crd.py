"""The QARun CustomResourceDefinition, generated from the pydantic models in qarun_core.spec.

`python -m qarun_operator.crd [PATH]` writes it (default: stdout); the committed copy in
charts/qarun-operator/crds/ is checked against this output by a test.

Pydantic emits JSON Schema 2020-12; Kubernetes wants a structural OpenAPI v3 schema:
every $ref is inlined, `Optional[X]` becomes X with `nullable`, numeric
`exclusiveMinimum` becomes the boolean form, titles go, object defaults are filled in
from the models' default factories (so the API server defaults nested fields too), and
each model's `rules` become `x-kubernetes-validations`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from qarun_core import spec as s
from qarun_operator.objects import JSON

PRINTER_COLUMNS: list[JSON] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Workers", "type": "integer", "jsonPath": ".status.replicas"},
    {"name": "Answered", "type": "integer", "jsonPath": ".status.progress.answered"},
    {"name": "Validated", "type": "integer", "jsonPath": ".status.progress.validated"},
    {"name": "Score", "type": "number", "jsonPath": ".status.score.mean", "format": "float"},
    {"name": "Model", "type": "string", "jsonPath": ".spec.llm.model", "priority": 1},
    {"name": "Scorer", "type": "string", "jsonPath": ".spec.scoring.method", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model class reachable from root, by the name pydantic gives its $defs entry."""
    found: dict[str, type[BaseModel]] = {}
    pending = [root]
    while pending:
        model = pending.pop()
        if model.__name__ in found:
            continue
        found[model.__name__] = model
        for field in model.model_fields.values():
            for kind in _classes(field.annotation):
                pending.append(kind)
    return found


def _classes(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [c for arg in getattr(annotation, "__args__", ()) for c in _classes(arg)]


class _Converter:
    def __init__(self, root: type[BaseModel], *, defaults: bool) -> None:
        self.schema = root.model_json_schema(by_alias=True, mode="validation")
        self.defs: JSON = self.schema.pop("$defs", {})
        self.models = _models(root)
        self.defaults = defaults

    def convert_root(self, model: type[BaseModel]) -> JSON:
        return self._node(self.schema, model)

    def _node(self, node: JSON, model: type[BaseModel] | None = None) -> JSON:  # noqa: PLR0912 - one branch per JSON Schema keyword
        node = dict(node)
        if "$ref" in node:
            name = node.pop("$ref").rsplit("/", 1)[-1]
            target = self.defs[name]
            node = {**target, **node}  # the field's own description/default win
            model = self.models.get(name)
        if "anyOf" in node:
            options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"only Optional[X] unions map to a structural schema: {node}")
            inner = self._node(options[0])
            node = {**inner, **{k: v for k, v in node.items() if k != "default"}}
            if node.get("default", "missing") is None:
                node.pop("default")
            node["nullable"] = True
        out: JSON = {}
        for key, value in node.items():
            if key in ("title", "$defs"):
                continue
            if key == "default" and (not self.defaults or value is None):
                continue
            if key == "exclusiveMinimum":
                out["minimum"] = value
                out["exclusiveMinimum"] = True
            elif key == "exclusiveMaximum":
                out["maximum"] = value
                out["exclusiveMaximum"] = True
            elif key == "properties":
                out["properties"] = {
                    prop: self._property(model, prop, sub) for prop, sub in value.items()
                }
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    out["additionalProperties"] = self._node(value)
                # `false` is implied: structural schemas prune unknown fields and
                # kubectl's strict field validation reports them.
            elif key == "items":
                out["items"] = self._node(value)
            else:
                out[key] = value
        return out

    def _property(self, model: type[BaseModel] | None, alias: str, sub: JSON) -> JSON:
        converted = self._node(sub)
        if not self.defaults or model is None or "default" in converted:
            return converted
        for field in model.model_fields.values():
            if (field.alias or "") == alias and field.default_factory is not None:
                value = field.default_factory()  # type: ignore[call-arg]
                if isinstance(value, BaseModel):
                    converted["default"] = value.model_dump(
                        mode="json", by_alias=True, exclude_none=True
                    )
        return converted


def _status_schema() -> JSON:
    schema = _Converter(s.QARunStatus, defaults=False).convert_root(s.QARunStatus)
    conditions = schema["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["items"]["required"] = ["type", "status"]
    return schema


def open_api_schema() -> JSON:
    spec = _Converter(s.QARunSpec, defaults=True).convert_root(s.QARunSpec)
    return {
        "type": "object",
        "description": "A question-answering evaluation of an LLM, run as a pipeline of "
        "Kafka topics, LLM workers and a Flink scoring job.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": _status_schema(),
        },
        "x-kubernetes-validations": [
            # No fieldPath: the root's metadata has no declared properties to point at;
            # the message names metadata.name.
            {"rule": s.NAME_RULE.cel, "message": s.NAME_RULE.message}
        ],
    }


def crd() -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{s.PLURAL}.{s.GROUP}",
            "labels": {"app.kubernetes.io/part-of": "qarun"},
        },
        "spec": {
            "group": s.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": s.KIND,
                "listKind": f"{s.KIND}List",
                "plural": s.PLURAL,
                "singular": s.SINGULAR,
                "shortNames": list(s.SHORT_NAMES),
                "categories": ["qarun"],
            },
            "versions": [
                {
                    "name": s.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": open_api_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.workers.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


HEADER = "# Generated by `python -m qarun_operator.crd` from qarun_core.spec. Do not edit.\n"


def render() -> str:
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if not args:
        sys.stdout.write(text)
    for path in args:
        Path(path).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
