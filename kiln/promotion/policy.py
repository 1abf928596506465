"""The promotion policy file (YAML, ``version: 1``): ordered channels and, per channel, the rules an
image version must pass to enter it. ``kiln promotions schema`` prints its JSON Schema."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kiln.errors import ValidationFailed
from kiln.evidence.vulnscan import Severity
from kiln.inputfile import read_input
from kiln.yamlsrc import parse_yaml

DEFAULT_CHANNELS = ["dev", "staging", "prod"]
CHANNEL = r"^[a-z][a-z0-9-]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Waiver(_Strict):
    """An accepted finding: who accepted it, why, until when (an expired waiver waives nothing)."""

    cve: str
    owner: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    expires: date
    package: str | None = None


class ScanRule(_Strict):
    max_age_hours: float = Field(24, gt=0, description="the scan is at most this old")
    max_db_age_hours: float = Field(48, gt=0, description="the database was at most this old when scanned")
    fail_on: Severity = Field("high", description="lowest severity that denies")
    only_fixable: bool = False
    waivers: list[Waiver] = Field(default_factory=list)


class SignatureRule(_Strict):
    keys: list[str] = Field(min_length=1, description="trusted public keys (relative to the policy file)")


class ChannelPolicy(_Strict):
    active: bool = Field(True, description="the image is active (not deprecated, disabled or retired)")
    tests_passed: bool = Field(False, description="its test phases passed on a fresh instance in the build")
    sbom: bool = Field(False, description="an SBOM is recorded and its file matches its digest")
    scan: ScanRule | None = None
    compliance_min: float | None = Field(None, ge=0, le=100, description="OpenSCAP score at least this")
    signature: SignatureRule | None = None
    parent_channel: bool = Field(False, description="a Kiln parent is in this channel or a later one")
    min_hours_in_previous: float | None = Field(
        None, ge=0, description="it entered the previous channel at least this long ago (0: only that it did)"
    )


class Policy(_Strict):
    version: Literal[1] = 1
    channels: list[str] = Field(default_factory=lambda: list(DEFAULT_CHANNELS), min_length=1)
    policies: dict[str, ChannelPolicy] = Field(default_factory=dict)
    on_violation: Literal["flag", "demote"] = "flag"

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        import re

        for name in value:
            if not re.match(CHANNEL, name):
                raise ValueError(f"channel {name!r}: lowercase letters, digits and '-', at most 32")
        if len(set(value)) != len(value):
            raise ValueError("a channel is listed twice")
        return value

    @model_validator(mode="after")
    def _known(self) -> Policy:
        unknown = sorted(set(self.policies) - set(self.channels))
        if unknown:
            raise ValueError(f"policies for unknown channel(s): {', '.join(unknown)}")
        return self

    def for_channel(self, channel: str) -> ChannelPolicy:
        return self.policies.get(channel, ChannelPolicy())

    def previous(self, channel: str) -> str | None:
        index = self.channels.index(channel)
        return self.channels[index - 1] if index > 0 else None


class LoadedPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path | None
    digest: str
    policy: Policy


def load_policy(path: Path | None) -> LoadedPolicy:
    """The policy at ``path`` (errors name file:line:column, exit 2); None: the built-in default
    (channels dev → staging → prod, every image must be active, nothing else)."""
    if path is None:
        text = "version: 1\n"
        return LoadedPolicy(path=None, digest=_digest(text), policy=Policy())
    text = read_input(path)
    source = parse_yaml(path, text)
    if not isinstance(source.data, dict):
        raise ValidationFailed([source.issue((), "a promotion policy must be a YAML mapping")])
    try:
        policy = Policy.model_validate(source.data)
    except ValidationError as exc:
        raise ValidationFailed(source.issues_from(exc)) from None
    return LoadedPolicy(path=path.resolve(), digest=_digest(text), policy=policy)


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def policy_schema() -> dict[str, Any]:
    return Policy.model_json_schema()
