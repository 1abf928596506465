"""``kiln toe run`` settings: awstoe's command line, or its config JSON.

As ``awstoe run``: exactly one of ``--config`` and ``--documents`` ("never both"), and with a config
file ``--parameters`` is an error too ("There are two exceptions to this rule - documents and
parameters ... Doing so will generate an error"); exit code 1, like any failed awstoe command.
``--override-config`` asks for Kiln's convenience of letting those win over the file. Every other
setting given on the command line overrides the file's (AWSTOE's precedence rule 1).
A parameter given with an empty value is refused: "not valid" per AWSTOE's variables page.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiln.errors import Issue, KilnError, ValidationFailed, display_path
from kiln.inputfile import read_input

DEFAULT_PHASES = ("build", "validate", "test")
_PAIR_START = re.compile(r",(?=[A-Za-z0-9_-]{3,128}=)")  # names are 3-128 characters


class ConfigConflict(KilnError):
    """Command-line settings that awstoe refuses together (its exit code 1, not a document error)."""

    exit_code = 1


class NameValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    value: str | list[str]

    @field_validator("value")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if value == "" or value == [] or value == [""]:
            raise ValueError("a parameter value must not be empty")
        return value

    @property
    def text(self) -> str:
        return ",".join(self.value) if isinstance(self.value, list) else self.value


class ConfigDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    parameters: list[NameValue] = Field(default_factory=list)


class RunConfig(BaseModel):
    """The awstoe ``--config`` JSON."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    documents: list[ConfigDocument] = Field(default_factory=list)
    phases: str | list[str] | None = None
    parameters: list[NameValue] = Field(default_factory=list)
    execution_id: str | None = Field(default=None, alias="executionId")
    log_directory: str | None = Field(default=None, alias="logDirectory")

    @field_validator("documents", mode="before")
    @classmethod
    def _plain_paths(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value


@dataclass
class DocumentRun:
    path: Path
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class RunSettings:
    documents: list[DocumentRun]
    phases: list[str]
    execution_id: str
    log_directory: Path


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_parameters(text: str) -> dict[str, str]:
    """``k=v,k2=v2``; a value may hold commas when the next ``name=`` does not follow them."""
    result: dict[str, str] = {}
    if not text.strip():
        return result
    for pair in _PAIR_START.split(text):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise KilnError(f"--parameters: {pair!r} is not NAME=VALUE", hint="write --parameters k=v,k2=v2")
        if value == "":
            raise ValidationFailed(
                [Issue("--parameters", None, None, name.strip(), "an empty value is not valid (AWSTOE)")]
            )
        result[name.strip()] = value
    return result


def load_config(path: Path) -> RunConfig:
    name = display_path(path)
    text = read_input(path)  # regular files only, size-capped, UTF-8 (positions for bad bytes)
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValidationFailed([Issue(name, None, None, "", "invalid JSON: nested too deeply")]) from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed([Issue(name, exc.lineno, exc.colno, "", f"invalid JSON: {exc.msg}")]) from None
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        issues = [
            Issue(
                name, None, None, ".".join(str(p) for p in e["loc"]), e["msg"].removeprefix("Value error, ")
            )
            for e in exc.errors()
        ]
        raise ValidationFailed(issues) from None


def settings(
    *,
    documents: str | None,
    phases: str | None,
    parameters: str | None,
    config: Path | None,
    execution_id: str | None,
    log_directory: Path | None,
    override_config: bool = False,
) -> RunSettings:
    """The command line, or the config file (with the command line over it only when asked)."""
    if config is not None:
        given = [o for o, v in (("--documents", documents), ("--parameters", parameters)) if v]
        if given and not override_config:
            raise ConfigConflict(
                f"--config cannot be combined with {' or '.join(given)}: awstoe takes exactly one of "
                "--config and --documents, and with a config file the documents and parameters come from "
                "that file",
                hint="move the setting into the config file, or add --override-config to let the command "
                "line win (a Kiln convenience awstoe does not have)",
            )
    cfg = load_config(config) if config else RunConfig()
    base = config.parent if config else Path.cwd()
    cli_parameters = parse_parameters(parameters or "")
    global_parameters = {p.name: p.text for p in cfg.parameters}
    runs: list[DocumentRun]
    if documents:
        runs = [DocumentRun(Path(p)) for p in split_list(documents)]
    else:
        runs = [
            DocumentRun(_relative(base, d.path), {p.name: p.text for p in d.parameters})
            for d in cfg.documents
        ]
    if not runs:
        raise KilnError("no documents to run", hint="give --documents a.yaml,b.yaml or a --config file")
    for run in runs:
        run.parameters = {**global_parameters, **run.parameters, **cli_parameters}
    if phases:
        chosen = split_list(phases)
    elif isinstance(cfg.phases, str):
        chosen = split_list(cfg.phases)
    else:
        chosen = list(cfg.phases or DEFAULT_PHASES)
    log_dir = log_directory or (_relative(base, cfg.log_directory) if cfg.log_directory else Path.cwd())
    return RunSettings(runs, chosen, execution_id or cfg.execution_id or str(uuid.uuid4()), log_dir)


def _relative(base: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p
