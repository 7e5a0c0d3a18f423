"""Reading a QARun YAML file, with errors that name the file and the field.

The file is the same one `kubectl apply -f` takes; it is checked with the pydantic
models the CRD is generated from (`qarun_core.spec`), so a spec that `qarun run`
accepts is one the API server accepts too, and the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from qarun_cli.errors import CLIError
from qarun_core.spec import API_VERSION, KIND, Model, QARunSpec, validate_name


@dataclass(frozen=True)
class SpecFile:
    path: Path
    name: str
    namespace: str
    spec: QARunSpec
    body: dict[str, Any]


def _rule_fields() -> dict[str, str]:
    """Message -> field path (".durationSeconds") of every cross-field rule of the spec."""
    found: dict[str, str] = {}
    pending: list[type[Model]] = [Model]
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        for rule in model.rules:
            found[rule.message] = rule.field_path
    return found


RULE_FIELDS = _rule_fields()


def _explain(error: ValidationError, prefix: str) -> list[str]:
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            lines.append(f"{where}: required field is missing")
        elif item["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown field (check the spelling; fields are camelCase)")
        elif item["type"] == "value_error" and message in RULE_FIELDS:
            # A cross-field rule: its field path is relative to the model it sits on.
            lines.append(f"{where}{RULE_FIELDS[message]}: {message}")
        else:
            given = item.get("input")
            shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
            lines.append(f"{where}: {message}{shown}")
    return lines


def load(path: Path) -> SpecFile:
    """Parse and validate; raises CLIError listing every problem with its field path."""
    try:
        text = path.read_text()
    except OSError as error:
        raise CLIError(f"cannot read {path}: {error.strerror}", code=2) from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise CLIError(f"{path} is not valid YAML: {error}", code=2) from None
    runs = [d for d in documents if isinstance(d, dict) and d.get("kind") == KIND]
    if not runs:
        raise CLIError(f"{path}: no document with kind: {KIND}", code=2)
    if len(runs) > 1:
        raise CLIError(f"{path}: {len(runs)} QARun documents; put one run per file", code=2)
    body = runs[0]
    problems: list[str] = []
    if body.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: must be {API_VERSION} (got {body.get('apiVersion')!r})")
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(metadata, dict)
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problems.append("metadata.name: required field is missing")
        name = ""
    else:
        try:
            validate_name(name)
        except ValueError as error:
            problems.append(str(error))
    raw_spec = body.get("spec")
    spec: QARunSpec | None = None
    if not isinstance(raw_spec, dict):
        problems.append("spec: required field is missing (at least spec.llm.model)")
    else:
        try:
            spec = QARunSpec.model_validate(raw_spec)
        except ValidationError as error:
            problems.extend(_explain(error, "spec"))
    if problems or spec is None:
        listed = "\n".join(f"  {line}" for line in problems)
        raise CLIError(f"{path} is not a valid QARun:\n{listed}", code=2)
    namespace = str(metadata.get("namespace") or "default")
    return SpecFile(path=path, name=name, namespace=namespace, spec=spec, body=body)
