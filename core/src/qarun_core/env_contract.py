"""The environment every QARun process reads, generated from the spec models.

A spec section reaches a process as one variable per field: `QARUN_` + the path of
the field in upper case, groups nested with a double underscore
(`retry.overload.base_delay_seconds` -> `QARUN_RETRY__OVERLOAD__BASE_DELAY_SECONDS`).
Each process reads them with one pydantic-settings object whose sections are the same
spec models, so a field added to the spec reaches the process with no name spelled by
hand. A field that names a Secret key (`...SecretRef`) is never a value here: the plan
hands it on as a Secret-backed variable of the settings field it fills (`SECRET_FIELDS`).
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from pydantic import BaseModel

from qarun_core.spec import SecretKeyRef

PREFIX = "QARUN_"
DELIMITER = "__"

# The spec sections each worker role receives (the plan's roles; `run` goes to all).
ROLE_SECTIONS: dict[str, tuple[str, ...]] = {
    "llm-worker": ("kafka", "llm", "retry", "budget", "storage"),
    "retry": ("kafka", "retry"),
    "storage-writer": ("kafka", "retry", "storage"),
    "generator": ("kafka", "retry", "dataset", "traffic", "storage"),
}
# And those the Flink scoring job receives (its JobParams groups).
FLINK_SECTIONS: tuple[str, ...] = ("kafka", "scoring", "flink")
# A Secret reference in the spec -> the settings field its value fills.
SECRET_FIELDS: dict[str, str] = {
    "api_key_secret_ref": "api_key",
    "postgres_secret_ref": "postgres_dsn",
}


def env_name(*path: str) -> str:
    """`env_name("llm", "base_url")` -> `QARUN_LLM__BASE_URL`."""
    return PREFIX + DELIMITER.join(part.upper() for part in path)


def env_value(value: Any) -> str:
    """A field's value as pydantic reads it back from a variable."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def model_env(value: BaseModel, *path: str) -> dict[str, str]:
    """Every field of a model as variables below `path`; None and Secret refs left out."""
    env: dict[str, str] = {}
    for name in type(value).model_fields:
        field = getattr(value, name)
        if field is None or isinstance(field, SecretKeyRef):
            continue
        if isinstance(field, BaseModel):
            env.update(model_env(field, *path, name))
        else:
            env[env_name(*path, name)] = env_value(field)
    return env


def secret_refs(value: BaseModel, *path: str) -> dict[str, SecretKeyRef]:
    """The variable each Secret reference of a section fills -> that reference."""
    refs: dict[str, SecretKeyRef] = {}
    for name in type(value).model_fields:
        field = getattr(value, name)
        if isinstance(field, SecretKeyRef):
            refs[env_name(*path, SECRET_FIELDS.get(name, name))] = field
        elif isinstance(field, BaseModel):
            refs.update(secret_refs(field, *path, name))
    return refs


def sections_env(spec: BaseModel, sections: tuple[str, ...]) -> dict[str, str]:
    """The variables of some sections of a spec."""
    env: dict[str, str] = {}
    for section in sections:
        env.update(model_env(getattr(spec, section), section))
    return env


def flag_name(*path: str) -> str:
    """`flag_name("scoring", "max_regenerations")` -> `--scoring.max-regenerations`."""
    return "--" + ".".join(part.replace("_", "-") for part in path)


def model_args(value: BaseModel, *path: str) -> list[str]:
    """The same fields as `model_env`, as command-line flags (the Flink job's arguments);
    empty strings left out (each such field's default), so no argument is ever empty."""
    args: list[str] = []
    for env, text in model_env(value, *path).items():
        if not text:
            continue
        parts = env.removeprefix(PREFIX).lower().split(DELIMITER)
        args += [flag_name(*parts), text]
    return args
