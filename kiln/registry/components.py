"""Publish, list, show, deprecate and resolve component documents in the catalog's registry.

Each version is immutable: publishing the same name and version again with the same bytes is a no-op
("already published, unchanged"); with other bytes it is refused (:class:`PublishConflict`, exit 1).
Kiln's built-in components are seeded as versions of their own (``builtin``), lazily and idempotently,
whenever the registry is read.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kiln.catalog import Catalog
from kiln.catalog.registry_models import PublishedComponentRow
from kiln.errors import Issue, KilnError, NotFound, UsageError, ValidationFailed, display_path
from kiln.inputfile import read_input
from kiln.registry.schemas import ComponentWithDocument, PublishedComponent, PublishOutcome, Resolution
from kiln.registry.semver import choose, format_version, parse_pattern, parse_version
from kiln.toe.document import Document, load_document
from kiln.toe.nesting import load_checked

# Image Builder takes inline component data of at most 16,000 characters; Kiln stores up to 64 KiB.
MAX_DOCUMENT_BYTES = 64 << 10
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")
BUILTIN_DIR = Path(__file__).resolve().parent.parent / "components"
BUILTIN_VERSION = "1.0.0"  # a built-in document without `version:` is this version
BUILTIN_PUBLISHER = "kiln (built-in)"


class PublishConflict(KilnError):
    """The name and version exist with other content: published versions are immutable (exit 1)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def text_digest(text: str) -> str:
    """What a build records for the stored text (a file's byte-order mark is not stored)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_name(name: str, where: str) -> str:
    if len(name) > 128 or not NAME.match(name):
        raise ValidationFailed(
            [
                Issue(
                    where,
                    None,
                    None,
                    "name",
                    f"'{name}' cannot be a registry name: use lowercase letters, "
                    "digits, '.', '_', '-' and '/' between parts (at most 128)",
                )
            ]
        )
    return name


def publishable_document(path: Path) -> Document:
    """Validate ``path`` as ``kiln toe validate`` does, then what the registry needs on top: a bounded
    size and no ExecuteDocument call of a local file (a published document must stand alone)."""
    read_input(path, limit=MAX_DOCUMENT_BYTES)  # regular file, UTF-8, size-capped (file:line errors)
    doc = load_checked(path)
    local = [c for c in doc.calls if not c.target.startswith("/")]
    if local:
        raise ValidationFailed(
            Issue(
                display_path(doc.path),
                c.line,
                c.column,
                c.field,
                f"ExecuteDocument of the local file {c.target}: a published component must stand alone "
                "(publish the called document as a component of its own and use it in the recipe)",
            )
            for c in local
        )
    return doc


def choose_version(declared: str | None, option: str | None, where: str) -> str:
    """The version to publish: the document's ``version:`` or the option; both must agree."""
    if option is not None:
        parse_version(option)
    if declared is not None and option is not None and declared != option:
        raise UsageError(
            f"{where}: the document says version {declared} but --version is {option}",
            hint="drop --version or change the document's `version:`",
        )
    chosen = option or declared
    if chosen is None:
        raise UsageError(
            f"{where}: no version: the document has no `version:` and no --version was given",
            hint="e.g. kiln components publish FILE --version 1.0.0",
        )
    return chosen


def publish_component(
    catalog: Catalog, path: Path, *, version: str | None = None, who: str
) -> PublishOutcome:
    """Validate the document at ``path`` and store it as ``NAME@VERSION`` (NAME: its ``name:``)."""
    doc = publishable_document(path)
    where = display_path(path)
    chosen = choose_version(doc.version, version, where)
    name = check_name(doc.name, where)
    row = PublishedComponentRow(
        name=name,
        version=chosen,
        digest=text_digest(doc.text),
        document=doc.text,
        description=doc.description or "",
        platform="Linux",
        builtin=False,
        state="active",
        published_by=who,
        published=utcnow(),
    )
    return _store(catalog, row)


def _store(catalog: Catalog, row: PublishedComponentRow) -> PublishOutcome:
    ensure_builtins(catalog)
    outcome = PublishOutcome(
        created=True, kind="component", name=row.name, version=row.version, digest=row.digest
    )
    try:
        with catalog.session(write=True) as s, s.begin():
            existing = _row(s, row.name, row.version)
            if existing is None:
                s.add(row)
                return outcome
    except IntegrityError:  # published concurrently: compare with what won
        pass
    with catalog.session() as s:
        existing = _row(s, row.name, row.version)
    assert existing is not None
    if existing.digest != row.digest:
        raise PublishConflict(
            f"component {row.name}@{row.version} is already published with other content "
            f"({existing.digest}); published versions are immutable",
            hint="publish the change as a new version (e.g. bump the patch number)",
        )
    return outcome.model_copy(update={"created": False})


def _row(s: Session, name: str, version: str) -> PublishedComponentRow | None:
    return s.scalar(
        select(PublishedComponentRow).where(
            PublishedComponentRow.name == name, PublishedComponentRow.version == version
        )
    )


def _record(row: PublishedComponentRow) -> PublishedComponent:
    return PublishedComponent(
        name=row.name,
        version=row.version,
        digest=row.digest,
        description=row.description,
        platform=row.platform,
        state="deprecated" if row.state == "deprecated" else "active",
        builtin=row.builtin,
        published_by=row.published_by,
        published=row.published,
        deprecated_by=row.deprecated_by,
        deprecated=row.deprecated,
        deprecation_reason=row.deprecation_reason,
    )


@dataclass(frozen=True)
class Builtin:
    name: str
    version: str
    digest: str
    text: str
    description: str


@functools.cache
def builtin_documents() -> tuple[Builtin, ...]:
    """Every built-in document (read once per process) at its ``version:``, else :data:`BUILTIN_VERSION`."""
    found = []
    for path in sorted(BUILTIN_DIR.rglob("*.yaml")):
        doc = load_document(path)
        found.append(Builtin(doc.name, doc.version or BUILTIN_VERSION, text_digest(doc.text), doc.text,
                             doc.description or ""))  # fmt: skip
    return tuple(found)


def _builtin_row(b: Builtin) -> PublishedComponentRow:
    return PublishedComponentRow(
        name=b.name, version=b.version, digest=b.digest, document=b.text, description=b.description,
        platform="Linux", builtin=True, state="active", published_by=BUILTIN_PUBLISHER, published=utcnow(),
    )  # fmt: skip


def ensure_builtins(catalog: Catalog) -> None:
    """Seed the built-in components that are not in the registry yet (safe to call any time)."""
    with catalog.session() as s:
        have = {
            (n, v)
            for n, v in s.execute(
                select(PublishedComponentRow.name, PublishedComponentRow.version).where(
                    PublishedComponentRow.builtin
                )
            ).all()
        }
    missing = [_builtin_row(b) for b in builtin_documents() if (b.name, b.version) not in have]
    if not missing:
        return
    try:
        with catalog.session(write=True) as s, s.begin():
            taken = {
                (n, v)
                for n, v in s.execute(select(PublishedComponentRow.name, PublishedComponentRow.version)).all()
            }
            s.add_all(r for r in missing if (r.name, r.version) not in taken)
    except IntegrityError:  # another process seeded them at the same moment
        pass


def list_components(catalog: Catalog, name: str | None = None) -> list[PublishedComponent]:
    """Every published version (of ``name``), by name then version (numeric order)."""
    ensure_builtins(catalog)
    with catalog.session() as s:
        query = select(PublishedComponentRow)
        if name is not None:
            query = query.where(PublishedComponentRow.name == name)
        rows = s.scalars(query).all()
        records = [_record(r) for r in rows]
    return sorted(records, key=lambda r: (r.name, parse_version(r.version)))


def _versions_hint(catalog: Catalog, name: str) -> str:
    versions = list_components(catalog, name)
    if not versions:
        known = sorted({c.name for c in list_components(catalog)})
        return "published components: " + (", ".join(known) or "none")
    listed = [c.version + (" (deprecated)" if c.state == "deprecated" else "") for c in versions]
    return f"available versions of {name}: " + ", ".join(listed)


def resolve_component(catalog: Catalog, name: str, pattern: str) -> Resolution:
    """The one version ``NAME@PATTERN`` selects: an exact version as given (deprecated or not); for a
    wildcard or ``latest``, the highest active match, else (every match deprecated) the highest
    deprecated one. The chosen version's ``deprecation_reason`` is set when it is deprecated."""
    wanted = parse_pattern(pattern)
    chosen = choose(list_components(catalog, name), wanted)
    if chosen is None:
        raise NotFound(
            f"no published version of component {name} matches {pattern}", hint=_versions_hint(catalog, name)
        )
    reason = (chosen.deprecation_reason or "no reason given") if chosen.state == "deprecated" else None
    return Resolution(
        name=name,
        pattern=wanted.text,
        version=chosen.version,
        digest=chosen.digest,
        deprecation_reason=reason,
    )


def get_component(catalog: Catalog, name: str, pattern: str = "latest") -> ComponentWithDocument:
    """The version ``NAME@PATTERN`` resolves to, with its document text."""
    chosen = resolve_component(catalog, name, pattern)
    with catalog.session() as s:
        row = _row(s, name, chosen.version)
        assert row is not None
        return ComponentWithDocument(component=_record(row), document=row.document)


def deprecate_component(
    catalog: Catalog, name: str, version: str, *, reason: str, who: str
) -> PublishedComponent:
    """Mark one exact version deprecated (still usable, warned about); again is a no-op."""
    version = format_version(parse_version(version))
    if not reason.strip():
        raise UsageError("a deprecation needs a reason", hint="--reason 'superseded by 1.3.0'")
    ensure_builtins(catalog)
    with catalog.session(write=True) as s, s.begin():
        row = _row(s, name, version)
        if row is not None:
            if row.state != "deprecated":
                row.state = "deprecated"
                row.deprecated_by = who
                row.deprecated = utcnow()
                row.deprecation_reason = reason.strip()
            return _record(row)
    raise NotFound(f"no component {name}@{version}", hint=_versions_hint(catalog, name))
