"""The base of every QARun model and what its schema is built from: the resource's
names, the patterns its fields share, and cross-field `Rule`s that are both a CEL rule
the API server enforces and the same check in Python."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "qarun.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "QARun"
PLURAL = "qaruns"
SINGULAR = "qarun"
SHORT_NAMES = ("qr",)

# A run's name appears in topic names (`qarun.<run>.<stream>`, dots are separators), in
# label values and in the Services the Flink operator derives from it (DNS-1035 labels,
# `<run>-flink-rest`), hence a letter first, no dots and a length that leaves room for
# the longest suffix.
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MAX_LENGTH = 40
URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$"


def validate_name(name: str) -> str:
    """The checks the CRD applies to metadata.name, for runs that never see the API server."""
    if len(name) > NAME_MAX_LENGTH or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(NAME_RULE.message)
    return name


class Rule(NamedTuple):
    """A cross-field check: CEL for the API server, a predicate for Python, one message."""

    cel: str
    message: str
    field_path: str  # JSONPath below the object the rule sits on, e.g. ".maxReplicas"
    check: Callable[[Any], bool]


NAME_RULE = Rule(
    cel=(
        f"self.metadata.name.size() <= {NAME_MAX_LENGTH} && "
        f"self.metadata.name.matches('{NAME_PATTERN}')"
    ),
    message=(
        f"metadata.name must be at most {NAME_MAX_LENGTH} characters of lowercase letters, "
        "digits and '-', start with a letter and end with a letter or digit (no dots: "
        "the name is part of Kafka topic names)"
    ),
    field_path=".metadata.name",
    check=lambda _: True,
)


def _rules_to_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    schema.pop("title", None)
    rules: tuple[Rule, ...] = getattr(model, "rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [
            {"rule": r.cel, "message": r.message, "fieldPath": r.field_path} for r in rules
        ]


class Model(BaseModel):
    """Base of every spec/status model: camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
        json_schema_extra=_rules_to_schema,
    )
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Any:
        for rule in self.rules:
            if not rule.check(self):
                raise ValueError(rule.message)  # every message names its field
        return self

    def to_yaml_dict(self) -> dict[str, Any]:
        """The camelCase form written in YAML, as the API server stores it."""
        return self.model_dump(mode="json", by_alias=True)


class SecretKeyRef(Model):
    """A key of a Secret in the run's namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=K8S_NAME_PATTERN, description="The Secret's name."
    )
    key: str = Field(
        default="apiKey",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="The key within the Secret.",
    )
