"""The lifecycle policy file (YAML, ``version: 1``): rules by age and count that move old image versions
to deprecated, disabled and retired; exclusions. ``kiln schema lifecycle-policy`` prints its JSON Schema.

.. code-block:: yaml

    version: 1
    rules:
      - images: ["web", "api-*"]      # name patterns (fnmatch); the first matching rule applies
        keep_newest: 3                # the 3 newest versions of each name are left alone
        deprecate_after_days: 30      # the others, by age since they were recorded
        disable_after_days: 90
        retire_after_days: 180
        retain_at_least: 2            # never fewer than 2 usable (active/deprecated) versions per name
    exclude:
      names: ["golden-*"]
      labels: {keep: "forever"}
      parents_of_usable: true         # an image an active or deprecated image is built on
      in_channel: true                # an image a promotion channel points at
"""

from __future__ import annotations

import hashlib
import itertools
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kiln.errors import ValidationFailed
from kiln.inputfile import read_input
from kiln.yamlsrc import parse_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Days = Field(None, ge=0, le=36500)


class Rule(_Strict):
    """How long versions of the matching image names stay in each state."""

    images: list[str] = Field(default_factory=lambda: ["*"], min_length=1,
                              description="image name patterns (fnmatch: *, ?, [..])")  # fmt: skip
    keep_newest: int = Field(
        0, ge=0, description="the N newest versions per name are left alone by this rule"
    )
    deprecate_after_days: float | None = Days
    disable_after_days: float | None = Days
    retire_after_days: float | None = Days
    retain_at_least: int = Field(
        0, ge=0, description="at least N versions per name stay usable (active or deprecated): the N newest"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Rule:
        named = (
            ("deprecate_after_days", self.deprecate_after_days),
            ("disable_after_days", self.disable_after_days),
            ("retire_after_days", self.retire_after_days),
        )
        ages = [(n, v) for n, v in named if v is not None]
        if not ages:
            raise ValueError("a rule needs deprecate_after_days, disable_after_days or retire_after_days")
        for (a, x), (b, y) in itertools.pairwise(ages):
            if y < x:
                raise ValueError(f"{b} ({y:g}) is earlier than {a} ({x:g})")
        return self

    def matches(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.images)


class Exclusions(_Strict):
    names: list[str] = Field(default_factory=list, description="image name patterns never changed")
    labels: dict[str, str] = Field(default_factory=dict, description="versions carrying any of these labels")
    parents_of_usable: bool = Field(True, description="versions an active or deprecated image is built on")
    in_channel: bool = Field(True, description="versions a promotion channel currently points at")


class LifecyclePolicy(_Strict):
    version: Literal[1] = 1
    rules: list[Rule] = Field(min_length=1)
    exclude: Exclusions = Field(default_factory=Exclusions)

    def rule_for(self, name: str) -> tuple[int, Rule] | None:
        """The first rule whose patterns match ``name`` (its index and itself)."""
        return next(((i, r) for i, r in enumerate(self.rules) if r.matches(name)), None)


class LoadedLifecyclePolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    digest: str
    policy: LifecyclePolicy


def load_lifecycle_policy(path: Path) -> LoadedLifecyclePolicy:
    """The policy at ``path``; every problem is reported as ``file:line:column: field: message`` (exit 2)."""
    text = read_input(path)
    source = parse_yaml(path, text)
    if not isinstance(source.data, dict):
        raise ValidationFailed([source.issue((), "a lifecycle policy must be a YAML mapping")])
    try:
        policy = LifecyclePolicy.model_validate(source.data)
    except ValidationError as exc:
        raise ValidationFailed(source.issues_from(exc)) from None
    return LoadedLifecyclePolicy(
        path=path.resolve(), digest="sha256:" + hashlib.sha256(text.encode()).hexdigest(), policy=policy
    )


def lifecycle_policy_schema() -> dict[str, Any]:
    return LifecyclePolicy.model_json_schema()
