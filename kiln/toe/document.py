"""Load and validate an AWSTOE component document completely before anything runs.

Every problem is reported at once as ``file:line:column: phases[build].steps[Name].inputs.x: message``.
Inputs holding ``{{ ... }}`` expressions are validated again at run time, after substitution.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kiln.errors import Issue, ValidationFailed, display_path
from kiln.inputfile import decode_text, read_input_bytes
from kiln.toe.actions import Action, lookup
from kiln.toe.comment_cut import check_cut_commands
from kiln.toe.conditions import IfSpec
from kiln.toe.docpaths import is_local_relative
from kiln.toe.document_model import (
    STANDARD_PHASES,
    ConstantBody,
    DocumentHeader,
    ParameterBody,
    PhaseSpec,
    StepSpec,
)
from kiln.toe.loops import LoopSpec
from kiln.toe.quirks import restore_unquoted_expressions
from kiln.toe.static_checks import check_references, check_undeclared
from kiln.toe.variables import scalar_text
from kiln.yamlsrc import Loc, SourceDocument, parse_yaml


@dataclass(frozen=True)
class ParameterDecl:
    name: str
    default: str | None
    description: str | None
    allowed: tuple[str, ...] | None = None  # ``allowedValues``


@dataclass(frozen=True)
class Step:
    name: str
    action: str
    action_class: type[Action]
    inputs: Any
    timeout_seconds: int
    on_failure: str
    max_attempts: int
    loop: LoopSpec | None
    condition: IfSpec | None
    line: int | None


@dataclass(frozen=True)
class DocumentCall:
    """An ExecuteDocument step with a literal local path: checked (with the whole tree) before a run."""

    target: str
    parameters: tuple[str, ...]
    line: int | None
    column: int | None
    field: str
    values: tuple[tuple[str, str], ...] = ()  # the literal parameter values (no {{ }})
    phase: str = ""  # the calling step's phase


@dataclass(frozen=True)
class Phase:
    name: str
    steps: list[Step]


@dataclass
class Document:
    """A validated component document."""

    name: str
    description: str | None
    path: Path
    digest: str
    text: str
    parameters: list[ParameterDecl]
    constants: dict[str, str]
    phases: list[Phase] = field(default_factory=list)
    calls: list[DocumentCall] = field(default_factory=list)
    # What AWSTOE accepts but ignores (input keys an action does not use): errors only when strict.
    warnings: list[Issue] = field(default_factory=list)
    version: str | None = None  # Kiln's registry: the document's own `version:` (x.y.z)
    # sha256 over what the build phase depends on: the document without its validate and test phases
    # (a layer's key uses it, so editing only those phases keeps the layer).
    build_digest: str = ""

    @property
    def phase_names(self) -> list[str]:
        return [p.name for p in self.phases]

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)

    def variables(self, values: Mapping[str, str]) -> dict[str, str]:
        """Constants, then parameters (value given, else default); unknown names are ignored."""
        result = dict(self.constants)
        for decl in self.parameters:
            if decl.name in values:
                result[decl.name] = values[decl.name]
            elif decl.default is not None:
                result[decl.name] = decl.default
        return result


def check_parameters(doc: Document, values: Mapping[str, str]) -> list[str]:
    """Messages for unknown parameter names, then :func:`parameter_errors`."""
    declared = {p.name for p in doc.parameters}
    messages = []
    for name in values:
        if name not in declared:
            hint = difflib.get_close_matches(name, sorted(declared), n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            known = ", ".join(sorted(declared)) or "none"
            messages.append(f"{doc.name}: unknown parameter {name!r}{extra}; declared: {known}")
    return messages + [message for _, message in parameter_errors(doc, values)]


def parameter_errors(doc: Document, values: Mapping[str, str]) -> list[tuple[str, str]]:
    """(parameter, message) for what stops a run: a required parameter (no default) left unset, an
    empty value ("not valid" per AWSTOE's variables page), a value outside ``allowedValues``."""
    messages = []
    for decl in doc.parameters:
        if decl.name not in values:
            if decl.default is None:
                messages.append(
                    (decl.name, f"{doc.name}: parameter {decl.name!r} has no default and needs a value")
                )
            continue
        value = values[decl.name]
        if value == "":
            messages.append((decl.name, f"{doc.name}: parameter {decl.name!r}: an empty value is not valid"))
        elif decl.allowed is not None and value not in decl.allowed and not _secret_placeholder(value):
            allowed = ", ".join(repr(v) for v in decl.allowed)
            text = (
                f"{doc.name}: parameter {decl.name!r}: {value!r} is not one of the allowed values {allowed}"
            )
            messages.append((decl.name, text))
    return messages


def _secret_placeholder(value: str) -> bool:
    """A recipe's secret parameter is checked by name only: its value is not known until the build."""
    return value.startswith("<secret:") and value.endswith(">")


NON_BUILD_PHASES = ("validate", "test")


def build_phase_digest(data: Mapping[str, Any]) -> str:
    """sha256 over the document's content without its ``validate`` and ``test`` phases."""
    phases = data.get("phases")
    if isinstance(phases, list):
        phases = [p for p in phases if not (isinstance(p, dict) and p.get("name") in NON_BUILD_PHASES)]
    canonical = json.dumps({**data, "phases": phases}, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def load_document(path: Path, text: str | None = None) -> Document:
    """Parse and validate ``path``; raises ValidationFailed listing every issue."""
    if text is None:
        raw = read_input_bytes(path)  # regular files only, size-capped
        text = decode_text(display_path(path), raw)
    else:
        raw = text.encode("utf-8")
    src = parse_yaml(path, text)
    unquoted: list[tuple[str | int, ...]] = []
    src.data = restore_unquoted_expressions(src.locator.root, src.data, unquoted)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    loader = _Loader(src)
    for where in unquoted:
        message = (
            'an unquoted {{ }} reference is not valid in AWSTOE ("it is not identified as a string"); '
            "Kiln reads it as the quoted text (an error with --strict)"
        )
        loader.warnings.append(src.issue(where, message))
    doc = loader.load(digest)
    if loader.issues or doc is None:
        raise ValidationFailed(loader.issues or [src.issue((), "not a component document")])
    return doc


class _Loader:
    def __init__(self, src: SourceDocument) -> None:
        self.src = src
        self.issues: list[Issue] = []
        self.warnings: list[Issue] = []
        self.calls: list[DocumentCall] = []

    def add(self, loc: Loc, field_path: str, message: str) -> None:
        self.issues.append(self.src.issue(loc, message, field=field_path))

    def pydantic(self, error: ValidationError, loc: Loc, field_prefix: str) -> None:
        for err in error.errors():
            sub = [
                p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
            ]
            self.add([*loc, *sub], _join(field_prefix, sub), _message(err))

    def load(self, digest: str) -> Document | None:
        data = self.src.data
        if not isinstance(data, dict):
            self.add((), "", "a component document must be a YAML mapping")
            return None
        header: DocumentHeader | None = None
        raw_phases = data.get("phases")
        phases_raw: list[Any] = raw_phases if isinstance(raw_phases, list) else []
        try:
            header = DocumentHeader.model_validate(data)
        except ValidationError as exc:
            self.pydantic(exc, (), "")
        params, constants = self.variables(header)
        phases = [p for i, raw in enumerate(phases_raw) if (p := self.phase(i, raw)) is not None]
        self.phase_rules(phases_raw)
        for loc, field_path, message in check_references(phases_raw):
            self.add(loc, field_path, message)
        declared = [p.name for p in params] + list(constants)
        for loc, field_path, message in check_undeclared(phases_raw, declared):
            self.warnings.append(self.src.issue(loc, message, field=field_path))
        for loc, field_path, message in check_cut_commands(self.src, phases_raw):
            self.warnings.append(self.src.issue(loc, message, field=field_path))
        if header is None:
            return None
        doc = Document(
            name=header.name or self.src.path.stem,
            description=header.description,
            path=self.src.path,
            digest=digest,
            text=self.src.text,
            parameters=params,
            constants=constants,
            phases=phases,
            calls=self.calls,
            warnings=self.warnings,
            version=header.version,
            build_digest=build_phase_digest(data),
        )
        return doc

    def variables(self, header: DocumentHeader | None) -> tuple[list[ParameterDecl], dict[str, str]]:
        if header is None:
            return [], {}
        params: list[ParameterDecl] = []
        constants: dict[str, str] = {}
        seen: set[str] = set()
        entries: list[tuple[str, int, str, ParameterBody | ConstantBody]] = [
            ("constants", i, n, b) for i, e in enumerate(header.constants or []) for n, b in e.items()
        ]
        entries += [
            ("parameters", i, n, b) for i, e in enumerate(header.parameters or []) for n, b in e.items()
        ]
        for kind, i, name, body in entries:
            if name in seen:
                self.add((kind, i, name), f"{kind}[{name}]", "name already declared")
            seen.add(name)
            if isinstance(body, ConstantBody):
                constants[name] = scalar_text(body.value)
            else:
                default = None if body.default is None else scalar_text(body.default)
                allowed = (
                    None if body.allowed_values is None else tuple(map(scalar_text, body.allowed_values))
                )
                params.append(ParameterDecl(name, default, body.description, allowed))
        return params, constants

    def phase_rules(self, phases_raw: list[Any]) -> None:
        names = [p.get("name") for p in phases_raw if isinstance(p, dict)]
        for i, name in enumerate(names):
            if name in names[:i]:
                self.add(("phases", i, "name"), f"phases[{name}]", "phase name used twice")
        if phases_raw and not any(n in STANDARD_PHASES for n in names):
            self.add(
                ("phases",), "phases", "a document needs at least one of the phases build, validate, test"
            )

    def phase(self, index: int, raw: Any) -> Phase | None:
        loc: Loc = ("phases", index)
        label = (
            f"phases[{raw.get('name')}]" if isinstance(raw, dict) and raw.get("name") else f"phases[{index}]"
        )
        try:
            spec = PhaseSpec.model_validate(raw)
        except ValidationError as exc:
            self.pydantic(exc, loc, label)
            raw_steps = raw.get("steps") if isinstance(raw, dict) else None
            steps_raw: list[Any] = raw_steps if isinstance(raw_steps, list) else []
            for j, step_raw in enumerate(steps_raw):
                self.step(label, (*loc, "steps", j), step_raw)
            return None
        steps: list[Step] = []
        step_names: list[str] = []
        loop_names: list[str] = []
        for j, step_raw in enumerate(spec.steps):
            step = self.step(label, (*loc, "steps", j), step_raw)
            name = step_raw.get("name") if isinstance(step_raw, dict) else None
            if isinstance(name, str):
                if name in step_names:
                    self.add(
                        (*loc, "steps", j, "name"), f"{label}.steps[{name}]", "step name used twice in phase"
                    )
                step_names.append(name)
            if step is not None and step.loop is not None and step.loop.name:
                if step.loop.name in loop_names:
                    self.add((*loc, "steps", j, "loop", "name"), f"{label}.steps[{name}].loop.name",
                             "loop name used twice in phase")  # fmt: skip
                loop_names.append(step.loop.name)
            if step is not None:
                steps.append(step)
        return Phase(spec.name, steps)

    def step(self, phase_label: str, loc: Loc, raw: Any) -> Step | None:
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"{phase_label}.steps[{name if isinstance(name, str) and name else loc[-1]}]"
        try:
            spec = StepSpec.model_validate(raw)
        except ValidationError as exc:
            self.pydantic(exc, loc, label)
            if isinstance(raw, dict) and isinstance(raw.get("action"), str):
                self.action(label, loc, raw["action"], raw.get("inputs"))
            return None
        cls = self.action(label, loc, spec.action, spec.inputs)
        if cls is None:
            return None
        timeout = spec.timeout_seconds
        if spec.action == "ExecuteDocument":
            self.call(label, loc, spec.inputs)
            timeout = self.execute_document_settings(label, loc, raw, spec)
        line, _ = self.src.locator.position(loc)
        return Step(
            name=spec.name, action=spec.action, action_class=cls, inputs=spec.inputs,
            timeout_seconds=timeout, on_failure=spec.on_failure,
            max_attempts=spec.max_attempts, loop=spec.loop, condition=spec.if_, line=line,
        )  # fmt: skip

    def execute_document_settings(self, label: str, loc: Loc, raw: dict[str, Any], spec: StepSpec) -> int:
        """ExecuteDocument "runs one time, with no retries allowed, and no option to set timeout
        limits ... sets the following default values, and returns an error if you try to change
        them: timeoutSeconds: -1, maxAttempts: 1". Returns the step's timeout (-1: none)."""
        for key, fixed, value in (("timeoutSeconds", -1, spec.timeout_seconds),
                                  ("maxAttempts", 1, spec.max_attempts)):  # fmt: skip
            if key in raw and value != fixed:
                message = f"ExecuteDocument runs once without a time limit: {key} is fixed at {fixed}"
                self.add((*loc, key), f"{label}.{key}", message)
        return -1

    def call(self, label: str, loc: Loc, inputs: Any) -> None:
        target = inputs.get("document") if isinstance(inputs, dict) else None
        if not isinstance(target, str) or _deferred(target) or not is_local_relative(target):
            return  # absolute paths are in the image, expressions are known at run time
        raw_parameters = inputs.get("parameters")
        entries = [p for p in raw_parameters or [] if isinstance(p, dict) and p.get("name") is not None]
        line, column = self.src.locator.position([*loc, "inputs", "document"])
        names_text = tuple(str(p["name"]) for p in entries)
        literal = {str(p["name"]): scalar_text(p.get("value")) for p in entries}
        known = {k: v for k, v in literal.items() if not _deferred(v)}
        phase = self._phase_name(loc)
        self.calls.append(
            DocumentCall(
                target, names_text, line, column, f"{label}.inputs.document", tuple(known.items()), phase
            )
        )

    def _phase_name(self, loc: Loc) -> str:
        """The name of the phase a step at ``("phases", i, "steps", j)`` belongs to."""
        phases = self.src.data.get("phases") if isinstance(self.src.data, dict) else None
        index = loc[1] if len(loc) > 1 else None
        if isinstance(phases, list) and isinstance(index, int) and isinstance(phases[index], dict):
            return str(phases[index].get("name", ""))
        return ""

    def action(self, label: str, loc: Loc, action: str, inputs: Any) -> type[Action] | None:
        cls = lookup(action)
        if cls is None:
            close = difflib.get_close_matches(action, sorted(Action.registry), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            self.add((*loc, "action"), f"{label}.action", f"unknown action {action!r}{hint}")
            return None
        if cls.windows_only:
            self.add(
                (*loc, "action"),
                f"{label}.action",
                f"{action}: Windows action, not supported on Linux images",
            )
            return None
        data, unused = cls().unused(inputs)
        for where in unused:
            sub = [p for p in where if not (isinstance(p, str) and "[" in p)]
            self.warnings.append(
                self.src.issue(
                    [*loc, "inputs", *sub],
                    f"{action} does not use input {str(sub[-1])!r}: AWSTOE ignores it and so does Kiln "
                    "(an error with --strict)",
                    field=_join(f"{label}.inputs", sub),
                )
            )
        try:
            cls.Inputs.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                if _deferred(err.get("input")):
                    continue
                sub = [p for p in err["loc"] if not (isinstance(p, str) and "[" in p)]
                self.add([*loc, "inputs", *sub], _join(f"{label}.inputs", sub), _message(err))
        return cls


def _deferred(value: Any) -> bool:
    """A value with ``{{ }}`` can only be judged after substitution."""
    return isinstance(value, str) and "{{" in value


def _join(prefix: str, loc: Loc) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
    return out


def _message(err: Any) -> str:
    if err["type"] == "model_type":
        # pydantic's text names the model class ("... or instance of CreateFileItem"): internal.
        return "Input should be a mapping"
    msg = re.sub(r" after validation, not \d+$", "", str(err["msg"]))
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    key, item = next(iter(value.items())) if isinstance(value, dict) and len(value) == 1 else ("", None)
    if err["type"] == "string_type" and " " in str(key).strip():
        # `- echo a: b` is the mapping {"echo a": "b"} to YAML: say how to write it (a command has a
        # space before its colon; `{name: root}` was meant as a mapping)
        text = f"{key}: {item}" if item is not None else f"{key}:"
        msg += (
            f"; YAML read an unquoted ': ' as a mapping: quote the whole line, e.g. '{text}' "
            "(or use a block scalar: `|`)"
        )
    return msg
