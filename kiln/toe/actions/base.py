"""The action plug-in contract: one class per AWSTOE action, registered by subclassing.

Every action has a nested pydantic ``Inputs`` model (a mapping, or a ``RootModel`` list for the
file-system family) and the same ``run(ctx, inputs) -> Outputs`` signature. Failures raise
:class:`ActionFailed`; an exit code 194 raises :class:`RebootRequested`.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from kiln.errors import KilnError
from kiln.toe.targets import Target

Outputs = dict[str, Any]

REBOOT_EXIT_CODE = 194
MAX_UNUSED_PASSES = 8  # unused keys at more depths than this are reported as errors


def _remove(data: Any, loc: tuple[str | int, ...]) -> bool:
    """Delete the key at ``loc`` (tags of tagged unions in ``loc`` are skipped); True if it was there."""
    node = data
    for part in loc[:-1]:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
    if isinstance(node, dict) and loc and loc[-1] in node:
        del node[loc[-1]]
        return True
    return False


class ActionFailed(KilnError):
    """The action did its work and failed; ``exit_code`` when a process said so."""

    def __init__(self, message: str, *, exit_code: int | None = None, output_tail: str = "") -> None:
        super().__init__(message)
        self.returncode = exit_code
        self.output_tail = output_tail


class RebootRequested(KilnError):
    """The step exited 194: "reboot, then run this step again"."""

    def __init__(self, outputs: Outputs | None = None) -> None:
        super().__init__(f"step requested a reboot (exit code {REBOOT_EXIT_CODE})")
        self.outputs = outputs or {}


class InputModel(BaseModel):
    """Base for ``Inputs`` mappings: unknown keys are found (``extra_forbidden``) and reported as
    warnings by validation, then dropped before the action runs (see :meth:`Action.unused`)."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        coerce_numbers_to_str=True,
        alias_generator=to_camel,
        defer_build=True,  # ~30 actions, a document uses a few: build validators on first use
    )


@dataclass
class ActionContext:
    """What an action may use: where it runs, its time budget, and how to report output."""

    target: Target
    document: str
    phase: str
    step: str
    timeout: float | None
    output: Callable[[str], None]
    env: Mapping[str, str] = field(default_factory=dict)
    # Services some actions need, set by the runner (S3 endpoint settings...).
    services: dict[str, Any] = field(default_factory=dict)
    # Runs another document (ExecuteDocument): (path, phases, parameters) -> DocumentResult.
    nested: Callable[[Path, list[str], dict[str, str]], Any] | None = None
    # Reboots requested by Reboot steps (recorded, not performed, in a root filesystem).
    reboots: list[str] = field(default_factory=list)
    # Exact command lines run for this step (shell-quoted), for application.log and reruns by hand.
    processes: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.target.root


class Action(ABC):
    """Base class; subclasses set ``name`` (the AWSTOE action) and ``Inputs``."""

    name: ClassVar[str]
    Inputs: ClassVar[type[BaseModel]]
    windows_only: ClassVar[bool] = False
    registry: ClassVar[dict[str, type[Action]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return  # an abstract intermediate class
        if name in Action.registry:
            raise TypeError(f"action {name} registered twice ({Action.registry[name].__qualname__})")
        Action.registry[name] = cls

    def parse(self, raw: Any) -> Any:
        """Validate raw (substituted) inputs; ``None`` means "no inputs given". Keys the action does
        not use are dropped (AWSTOE ignores them; validation warns about them, see :meth:`unused`)."""
        try:
            return self.Inputs.model_validate({} if raw is None else raw)
        except ValidationError as exc:
            if not any(e["type"] == "extra_forbidden" for e in exc.errors()):
                raise
        return self.Inputs.model_validate(self.unused(raw)[0])

    def unused(self, raw: Any) -> tuple[Any, list[tuple[str | int, ...]]]:
        """``raw`` without the keys the action does not use, and where each of those keys was."""
        data = copy.deepcopy({} if raw is None else raw)
        found: list[tuple[str | int, ...]] = []
        for _ in range(MAX_UNUSED_PASSES):
            try:
                self.Inputs.model_validate(data)
            except ValidationError as exc:
                extra = [tuple(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
                removed = [loc for loc in extra if _remove(data, loc)]
                if removed:
                    found.extend(removed)
                    continue
            break
        return data, found

    @classmethod
    def inputs_schema(cls) -> dict[str, Any]:
        """JSON Schema of ``inputs`` (for editors), derived from the ``Inputs`` model."""
        return cls.Inputs.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")

    @abstractmethod
    def run(self, ctx: ActionContext, inputs: Any) -> Outputs:
        """Do the work; return outputs (``stdout``, ``destination``...)."""


class WindowsAction(Action):
    """Recognised AWSTOE action that only exists for Windows images."""

    windows_only = True
    Inputs = InputModel

    def parse(self, raw: Any) -> Any:
        return raw

    def run(self, ctx: ActionContext, inputs: Any) -> Outputs:
        raise ActionFailed(f"{self.name} is a Windows action, not supported on Linux images")
