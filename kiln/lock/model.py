"""The lock file of a build: the resolved inputs that reproduce its package set and components.

Written as stable JSON (sorted keys, sorted packages) so two builds of the same inputs produce the
same bytes, and so a lock diff in review shows exactly what moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kiln.errors import Issue, KilnError, ValidationFailed, display_path
from kiln.rootfs.archive import SuiteState
from kiln.yamlsrc import dotted, parse_yaml

SCHEMA_VERSION: Literal[1] = 1
SHA256 = r"^[0-9a-f]{64}$"
DIGEST = r"^sha256:[0-9a-f]{64}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecipeLock(_Frozen):
    path: str
    digest: str = Field(pattern=DIGEST)


class ParentLock(_Frozen):
    """Where the root came from: the archive, suite and sources the parent was bootstrapped from."""

    image: str = Field(min_length=1)
    mirror: str | None = None
    suite: str | None = None
    sources: list[str] = Field(default_factory=list)
    snapshot: str | None = Field(default=None, description="archive snapshot time, if the parent used one")
    source_date_epoch: int = Field(ge=0)
    key: str = Field(
        description="the parent's cache key (kiln.rootfs.debian.DebianParent.key); "
        "an image parent's OCI manifest digest"
    )
    digest: str | None = Field(
        default=None, pattern=DIGEST, description="an image parent's OCI manifest digest"
    )
    ref: str | None = Field(default=None, description="a catalogued parent's exact version, NAME@x.y.z/n")
    archive: list[SuiteState] = Field(
        default_factory=list,
        description="each suite's Release file (Date, sha256) as the parent's bootstrap fetched it",
    )


class LockedPackage(_Frozen):
    """One installed package of the final image and the .deb it was installed from."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    architecture: str = Field(min_length=1)
    source: str | None = None
    sha256: str | None = Field(default=None, pattern=SHA256, description="None: no .deb in the cache")
    filename: str | None = Field(default=None, description="the .deb's name in the package cache")

    @property
    def ident(self) -> str:
        return f"{self.name}:{self.architecture}"

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value.endswith(".deb") or "/" in value or value.startswith(".")):
            raise ValueError("must be a plain .deb file name")
        return value


class ComponentLock(_Frozen):
    name: str = Field(min_length=1)
    version: str | None = Field(None, description="the version recorded (a registry version, builtin, local)")
    digest: str = Field(pattern=DIGEST)
    parameters: dict[str, Any] = Field(default_factory=dict)
    role: Literal["component", "test"] = "component"


class LockFile(_Frozen):
    schema_version: Literal[1] = SCHEMA_VERSION
    recipe: RecipeLock
    parent: ParentLock
    packages: list[LockedPackage]
    components: list[ComponentLock] = Field(default_factory=list)

    @field_validator("packages")
    @classmethod
    def _unique(cls, packages: list[LockedPackage]) -> list[LockedPackage]:
        seen: set[str] = set()
        for package in packages:
            if package.ident in seen:
                raise ValueError(f"package {package.ident} is listed twice")
            seen.add(package.ident)
        return sorted(packages, key=lambda p: (p.name, p.architecture))

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: names this lock (and its local repository) everywhere."""
        return "sha256:" + hashlib.sha256(dumps(self).encode()).hexdigest()


def dumps(lock: LockFile) -> str:
    """Canonical, stable JSON text of ``lock`` (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(lock.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_lockfile(path: Path, lock: LockFile) -> None:
    """Write ``lock`` atomically: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(dumps(lock))
        Path(tmp).chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_lockfile(path: Path) -> LockFile:
    """Load and validate a lock file; every problem is reported as ``file:line:col: field: message``."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KilnError(f"{shown}: lock file not found", hint="pass the lock.json of a build") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KilnError(f"{shown}: cannot read the lock file: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(
            [Issue(shown, exc.lineno, exc.colno, "", f"not valid JSON: {exc.msg}")]
        ) from None
    if not isinstance(data, dict):
        raise ValidationFailed(_issues(path, text, [((), "a lock file is a JSON object")]))
    if data.get("schema_version") != SCHEMA_VERSION:
        message = (
            f"unsupported lock file version {data.get('schema_version')!r} (this Kiln reads {SCHEMA_VERSION})"
        )
        raise ValidationFailed(_issues(path, text, [(("schema_version",), message)]))
    try:
        return LockFile.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(_issues(path, text, exc)) from None


def _issues(
    path: Path, text: str, problems: ValidationError | list[tuple[tuple[str, ...], str]]
) -> list[Issue]:
    """Problems with their positions in the file. JSON is YAML, and the YAML loader keeps positions
    (it is much slower than the json module, so it only runs when something is wrong)."""
    try:
        doc = parse_yaml(path, text)
    except ValidationFailed:  # valid JSON that YAML rejects: the same messages, without positions
        shown = display_path(path)
        if isinstance(problems, ValidationError):
            return [Issue(shown, None, None, dotted(e["loc"]), str(e["msg"])) for e in problems.errors()]
        return [Issue(shown, None, None, dotted(loc), message) for loc, message in problems]
    if isinstance(problems, ValidationError):
        return doc.issues_from(problems)
    return [doc.issue(loc, message) for loc, message in problems]
