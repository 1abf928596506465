"""Pydantic models of an AWSTOE component document (structure only; actions validate their inputs)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from kiln.toe.conditions import IfSpec
from kiln.toe.loops import LoopSpec
from kiln.toe.variables import NAME, scalar_text

# AWSTOE documents no character set for names; anything printable on one line is accepted (a name
# with "." or spaces cannot be used in chaining expressions, which split on ".").
STEP_NAME = r"^[^\r\n]{1,128}$"
PHASE_NAME = r"^[^\r\n]{1,128}$"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
STANDARD_PHASES = ("build", "validate", "test")
DEFAULT_TIMEOUT = 7200
MAX_TIMEOUT = 2**31 - 1
Scalar = str | StrictBool | StrictInt | StrictFloat


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ParameterBody(_Strict):
    """A parameter: ``type`` is required (the parameter table's "Required: Yes"), ``allowedValues``
    limits the values a run may give (AWS's own sample components use it)."""

    type: Literal["string"]
    default: Scalar | None = None
    description: str | None = None
    allowed_values: list[Scalar] | None = Field(default=None, alias="allowedValues", min_length=1)

    @model_validator(mode="after")
    def _default_allowed(self) -> ParameterBody:
        if self.default is not None and self.allowed_values is not None:
            allowed = [scalar_text(v) for v in self.allowed_values]
            if scalar_text(self.default) not in allowed:
                raise ValueError(
                    f"default {scalar_text(self.default)!r} is not one of allowedValues {allowed}"
                )
        return self


class ConstantBody(_Strict):
    type: Literal["string"]  # required, as for parameters
    value: Scalar


def _one_named(value: Any) -> Any:
    """Checked before the bodies, so that two names in one entry is the one message."""
    if not isinstance(value, dict):
        return value  # pydantic reports the type
    if len(value) != 1:
        raise ValueError("each entry must be a mapping with exactly one name")
    (name,) = value
    if not NAME.match(str(name)):
        raise ValueError(f"name {name!r} must be 3-128 characters of A-Z a-z 0-9 - _")
    return value


class DocumentHeader(_Strict):
    """Top level; ``phases`` items are validated one by one for precise step paths."""

    name: str | None = None
    description: str | None = None
    version: str | None = Field(
        None, description="Kiln extension: the document's semantic version in the registry (x.y.z)"
    )
    schema_version: str | StrictFloat | StrictInt = Field(alias="schemaVersion")
    parameters: list[Annotated[dict[str, ParameterBody], BeforeValidator(_one_named)]] | None = None
    constants: list[Annotated[dict[str, ConstantBody], BeforeValidator(_one_named)]] | None = None
    phases: list[Any] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _semantic_version(cls, value: Any) -> Any:
        if value is not None and not SEMVER.match(str(value)):
            raise ValueError(f"'{value}' is not a semantic version MAJOR.MINOR.PATCH (e.g. 1.0.0)")
        return None if value is None else str(value)

    @field_validator("schema_version")
    @classmethod
    def _version(cls, value: str | float | int) -> str:
        text = str(value).strip()
        if text not in ("1.0", "1"):
            raise ValueError(f"unsupported schemaVersion {value!r}; AWSTOE documents use 1.0")
        return "1.0"


class PhaseSpec(_Strict):
    name: str = Field(pattern=PHASE_NAME)
    steps: list[Any] = Field(min_length=1)


class StepSpec(_Strict):
    name: str = Field(pattern=STEP_NAME)
    action: str
    inputs: Any = None
    timeout_seconds: int = Field(default=DEFAULT_TIMEOUT, alias="timeoutSeconds")
    on_failure: Literal["Abort", "Continue", "Ignore"] = Field(default="Abort", alias="onFailure")
    max_attempts: int = Field(default=1, alias="maxAttempts", ge=1, le=1000)
    loop: LoopSpec | None = None
    if_: IfSpec | None = Field(default=None, alias="if")

    @field_validator("timeout_seconds", "max_attempts", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        return value  # "300" (quoted) is accepted like 300

    @field_validator("timeout_seconds")
    @classmethod
    def _timeout(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("timeoutSeconds must be positive, or -1 for no timeout")
        if value > MAX_TIMEOUT:
            raise ValueError(f"timeoutSeconds can be at most {MAX_TIMEOUT} (Image Builder's 32-bit limit)")
        return value

    @field_validator("on_failure", mode="before")
    @classmethod
    def _on_failure(cls, value: Any) -> Any:
        if isinstance(value, str):
            for word in ("Abort", "Continue", "Ignore"):
                if value.strip().lower() == word.lower():
                    return word
        return value
