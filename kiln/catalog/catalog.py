"""The catalog: every build, and every image version a successful build produced.

One :class:`Catalog` per process (or per request in the API). Each public method is one unit of
work in its own transaction; :meth:`Catalog.finish_build` records an image with everything that
belongs to it atomically, or nothing at all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, make_url, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from kiln.catalog import lineage, migrate, queries
from kiln.catalog.engine import WRITE, make_engine
from kiln.catalog.fencing import check_fence, close_attempt
from kiln.catalog.lineage import LineageGraph
from kiln.catalog.models import BuildJobRow, BuildRow, EvidenceRow, ImageRow, PromotionRow
from kiln.catalog.parents import Outdated, OutdatedIndex
from kiln.catalog.queries import LineageEntry, PackageMatch, image_options
from kiln.catalog.records import build_record, image_record, image_row
from kiln.catalog.refs import ImageRef, hostname, process_alive, this_process
from kiln.catalog.schemas import BuildRecord, EvidenceRecord, ImageRecord, NewImage, PackageRecord, semver_key
from kiln.errors import KilnError, NotFound
from kiln.events import model as events

BUILD_NUMBER_RETRIES = 5
BUILD_ID = re.compile(r"^[0-9a-f]{1,32}$")
CHANNEL_REF = re.compile(r"^(?:kiln:)?(?P<name>[a-z0-9][a-z0-9._-]*)@(?P<channel>[a-z][a-z0-9-]{0,31})$")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Catalog:
    """Repository of builds and image versions over SQLite or PostgreSQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(**{WRITE: True}), expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Open (creating or upgrading the schema) and mark builds whose process died as failed."""
        catalog = cls(url)
        try:
            migrate.upgrade(catalog.engine)
            catalog.reap_interrupted()
        except OperationalError as exc:
            catalog.close()
            where = make_url(url).render_as_string(hide_password=True)
            raise KilnError(
                f"cannot open the catalog database {where}: {exc.orig}",
                hint="check KILN_DATABASE_URL, the data directory's permissions, or that the server runs",
            ) from exc
        except BaseException:
            catalog.close()
            raise
        return catalog

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self, *, write: bool = False) -> Session:
        """A new ORM session (for query helpers); writers take the SQLite write lock at BEGIN."""
        return (self._write if write else self._read)()

    # --- builds -------------------------------------------------------------------------------

    def start_build(self, *, recipe_name: str, recipe_version: str, recipe_path: str, log_path: str) -> str:
        """Record a running build of this process; returns its id (32 hex digits)."""
        pid, pid_start = this_process()
        build_id = uuid.uuid4().hex
        with self._write.begin() as s:
            s.add(
                BuildRow(
                    id=build_id,
                    recipe_name=recipe_name,
                    recipe_version=recipe_version,
                    recipe_path=recipe_path,
                    status="running",
                    started=utcnow(),
                    log_path=log_path,
                    host=hostname(),
                    pid=pid,
                    pid_start=pid_start,
                )
            )
            _emit(s, events.build_event("started", build_id, recipe_name, recipe_version))
        return build_id

    def adopt_build(self, build_id: str, attempt: int, *, recipe_name: str, recipe_version: str,
                    recipe_path: str, log_path: str) -> str:  # fmt: skip
        """Take over a build the queue registered (kiln.executors.queue) as this process's attempt
        ``attempt``; refused when another attempt superseded it (fencing)."""
        pid, pid_start = this_process()
        with self._write.begin() as s:
            row = self._build_row(s, build_id)
            check_fence(s, row.id, attempt)
            row.recipe_name, row.recipe_version, row.recipe_path = recipe_name, recipe_version, recipe_path
            row.log_path, row.host, row.pid, row.pid_start = log_path, hostname(), pid, pid_start
            row.status, row.error, row.finished = "running", None, None
            _emit(s, events.build_event("started", row.id, recipe_name, recipe_version))
            return row.id

    def fail_build(
        self, build_id: str, error: str, *, cancelled: bool = False, attempt: int | None = None
    ) -> None:
        """Mark a build failed (``cancelled``: it was stopped on request; the event says so). A queued
        build's ``attempt`` must still be its current one (fencing)."""
        with self._write.begin() as s:
            row = self._build_row(s, build_id)
            if attempt is not None:
                check_fence(s, row.id, attempt)
                close_attempt(s, row.id, attempt, "failed", error)
            if row.status == "succeeded":
                raise KilnError(f"build {build_id} already succeeded; it cannot be marked failed")
            was_running = row.status == "running"
            row.status = "failed"
            row.error = error
            row.finished = row.finished or utcnow()
            if was_running:
                outcome: events.BuildOutcome = "cancelled" if cancelled else "failed"
                _emit(
                    s, events.build_event(outcome, row.id, row.recipe_name, row.recipe_version, error=error)
                )

    def finish_build(self, build_id: str, image: NewImage, *, attempt: int | None = None) -> ImageRecord:
        """In one transaction: number the image (max+1 for its name and version), record it with
        its components, artifacts, evidence and packages, and mark the build succeeded. A queued
        build's ``attempt`` must still be its current one (an attempt given up for lost cannot record)."""
        for retry in range(BUILD_NUMBER_RETRIES):
            try:
                with self._write.begin() as s:
                    build = self._build_row(s, build_id)
                    if attempt is not None:
                        check_fence(s, build.id, attempt)
                        close_attempt(s, build.id, attempt, "succeeded")
                    _serialize_numbering(s, image)
                    if build.status != "running":
                        raise KilnError(
                            f"build {build_id} is {build.status}; only a running build can finish"
                        )
                    latest = s.scalar(
                        select(func.max(ImageRow.build_number)).where(
                            ImageRow.name == image.name, ImageRow.version == image.version
                        )
                    )
                    now = utcnow()
                    row = image_row(image, build_id=build_id, build_number=(latest or 0) + 1, recorded=now)
                    s.add(row)
                    build.status = "succeeded"
                    build.finished = now
                    build.error = None
                    s.flush()
                    ref = f"{row.name}@{row.version}/{row.build_number}"
                    recipe = (build.recipe_name, build.recipe_version)
                    _emit(s, events.build_event("succeeded", build.id, *recipe, image=ref))
                    _emit(
                        s,
                        events.image_recorded(row.name, row.version, row.build_number, row.digest, build.id),
                    )
                    return image_record(row)
            except IntegrityError:
                # Another build of the same name+version took this number concurrently: renumber.
                if retry == BUILD_NUMBER_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def list_builds(self, limit: int = 50) -> list[BuildRecord]:
        with self._read() as s:
            rows = s.scalars(
                select(BuildRow)
                .options(selectinload(BuildRow.image))
                .order_by(BuildRow.started.desc(), BuildRow.id)
                .limit(limit)
            ).all()
            return [build_record(r) for r in rows]

    def get_build(self, build_id: str) -> BuildRecord:
        """A build by its id or a unique prefix of it."""
        with self._read() as s:
            return build_record(self._build_row(s, build_id))

    def reap_interrupted(self) -> list[str]:
        """Mark builds of this host whose process is gone as failed ("interrupted"); returns their ids."""
        # Queued builds (kiln.executors.queue) are the queue's: its stalled-job sweep retries them.
        queued = select(BuildJobRow.build_id).where(BuildJobRow.build_id == BuildRow.id).exists()
        mine = (BuildRow.status == "running", BuildRow.host == hostname(), ~queued)
        with self._read() as s:
            if all(
                process_alive(pid, start)
                for pid, start in s.execute(select(BuildRow.pid, BuildRow.pid_start).where(*mine))
            ):
                return []  # the usual case: no write transaction (and no SQLite write lock) at open
        reaped: list[str] = []
        with self._write.begin() as s:
            for row in s.scalars(select(BuildRow).where(*mine)).all():
                if process_alive(row.pid, row.pid_start):
                    continue
                row.status = "failed"
                row.error = (
                    f"interrupted: the build process (pid {row.pid}) ended without finishing the build"
                )
                row.finished = max(_last_log_time(row.log_path) or row.started, row.started)
                recipe = (row.recipe_name, row.recipe_version)
                _emit(s, events.build_event("failed", row.id, *recipe, error=row.error))
                reaped.append(row.id)
        return reaped

    # --- images -------------------------------------------------------------------------------

    def list_images(self, name: str | None = None) -> list[ImageRecord]:
        """Every recorded image version, by name, then version (semver), then build number."""
        with self._read() as s:
            query = select(ImageRow).options(*image_options())
            if name is not None:
                query = query.where(ImageRow.name == name)
            rows = s.scalars(query).all()
            rows = sorted(rows, key=lambda r: (r.name, semver_key(r.version), r.build_number))
            return [image_record(r) for r in rows]

    def get_image(self, ref: str) -> ImageRecord:
        """``name`` (latest version), ``name@1.2.3`` (its latest build), ``name@1.2.3/4`` or
        ``name@CHANNEL`` (the version a promotion channel points at, e.g. ``web@prod``); each may be
        written with the ``kiln:`` prefix recipes use for image parents."""
        channel = CHANNEL_REF.match(ref.strip())
        with self._read() as s:
            if channel:
                return image_record(self._channel_row(s, channel["name"], channel["channel"]))
            row = self._image_row(s, ImageRef.parse(ref.strip().removeprefix("kiln:")))
            return image_record(row)

    def _channel_row(self, s: Session, name: str, channel: str) -> ImageRow:
        """The image of the channel's newest allowed move (promotion, rollback, demotion)."""
        row = s.scalar(
            select(ImageRow)
            .options(*image_options())
            .join(PromotionRow, PromotionRow.image_id == ImageRow.id)
            .where(PromotionRow.image_name == name, PromotionRow.channel == channel, PromotionRow.allowed)
            .order_by(PromotionRow.id.desc())
            .limit(1)
        )
        if row is None:
            raise NotFound(f"no image of {name} in channel {channel}", hint=f"see: kiln channels list {name}")
        return row

    def add_evidence(self, ref: str, evidence: EvidenceRecord) -> ImageRecord:
        """Attach evidence produced after the build (e.g. a later scan) to a recorded image."""
        with self._write.begin() as s:
            row = self._image_row(s, ImageRef.parse(ref))
            row.evidence.append(
                EvidenceRow(
                    position=len(row.evidence), kind=evidence.kind, path=evidence.path,
                    digest=evidence.digest, summary=dict(evidence.summary),
                )
            )  # fmt: skip
            s.flush()
            return image_record(row)

    # --- queries ------------------------------------------------------------------------------

    def packages(self, ref: str) -> list[PackageRecord]:
        """The packages recorded for an image (from its build's package list), sorted by name."""
        with self._read() as s:
            return queries.packages_of(s, self._image_row(s, ImageRef.parse(ref)).id)

    def images_with_package(self, name: str, version_below: str | None = None) -> list[PackageMatch]:
        """Images containing binary or source package ``name`` (below ``version_below`` if given,
        compared as Debian versions), with the matching packages of each."""
        with self._read() as s:
            return queries.images_with_package(s, name, version_below)

    def images_page(
        self, name: str | None, offset: int, limit: int, visible: Callable[[str], bool] | None = None
    ) -> tuple[list[ImageRecord], int]:
        """A page of :meth:`list_images` (same order; only names ``visible`` accepts) and the total."""
        with self._read() as s:
            return queries.images_page(s, name, offset, limit, visible)

    def images_with_package_page(
        self, name: str, version_below: str | None, offset: int, limit: int,
        visible: Callable[[str], bool] | None = None,
    ) -> tuple[list[PackageMatch], int]:  # fmt: skip
        """A page of :meth:`images_with_package` (same order and matches) and the total."""
        with self._read() as s:
            return queries.images_with_package_page(s, name, version_below, offset, limit, visible)

    def lock(self, ref: str) -> dict[str, Any] | None:
        """The lock data (resolved inputs) recorded with an image, for reproducing its build."""
        with self._read() as s:
            return self._image_row(s, ImageRef.parse(ref)).lock

    def lineage(self, ref: str) -> list[LineageEntry]:
        """Ancestors of an image, nearest first, ending with its external root (``debian:bookworm``)."""
        with self._read() as s:
            return queries.lineage(s, self._image_row(s, ImageRef.parse(ref)))

    def children(self, ref: str) -> list[ImageRecord]:
        """Recorded images built directly on this one."""
        with self._read() as s:
            return queries.children(s, self._image_row(s, ImageRef.parse(ref)))

    def lineage_graph(self, ref: str) -> LineageGraph:
        """Ancestors (to the Debian or OCI root) and descendants of an image, as nodes and edges."""
        with self._read() as s:
            return lineage.lineage_graph(s, self._image_row(s, ImageRef.parse(ref)))

    def outdated(self) -> list[Outdated]:
        """Every image whose parent constraint now selects a newer active version (or whose parent
        is itself out of date), with the reason."""
        with self._read() as s:
            return OutdatedIndex(s).all()

    def outdated_reason(self, ref: str) -> Outdated | None:
        with self._read() as s:
            row = self._image_row(s, ImageRef.parse(ref))
            return OutdatedIndex(s).of(row.name, row.version, row.build_number)

    # --- helpers ------------------------------------------------------------------------------

    def _image_row(self, s: Session, ref: ImageRef) -> ImageRow:
        query = select(ImageRow).options(*image_options()).where(ImageRow.name == ref.name)
        if ref.version:
            query = query.where(ImageRow.version == ref.version)
        if ref.build is not None:
            query = query.where(ImageRow.build_number == ref.build)
        rows = s.scalars(query).all()
        if not rows:
            raise NotFound(f"no image {ref}", hint=self._image_hint(s, ref))
        return max(rows, key=lambda r: (semver_key(r.version), r.build_number))

    @staticmethod
    def _image_hint(s: Session, ref: ImageRef) -> str:
        versions = s.execute(
            select(ImageRow.version, ImageRow.build_number).where(ImageRow.name == ref.name)
        ).all()
        if versions:
            listed = sorted(versions, key=lambda v: (semver_key(v[0]), v[1]))
            return f"recorded versions of {ref.name}: " + ", ".join(f"{v}/{b}" for v, b in listed[-20:])
        names = s.scalars(select(ImageRow.name).distinct().order_by(ImageRow.name)).all()
        if not names:
            return "the catalog has no images yet; build one with: kiln build RECIPE"
        return "recorded images: " + ", ".join(names[:50])

    @staticmethod
    def _build_row(s: Session, build_id: str) -> BuildRow:
        wanted = build_id.strip().lower()
        if not BUILD_ID.match(wanted):
            raise NotFound(f"no build {build_id!r}", hint="a build id is hexadecimal; see: kiln builds list")
        rows = s.scalars(
            select(BuildRow)
            .options(selectinload(BuildRow.image))
            .where(BuildRow.id.startswith(wanted))
            .limit(5)
        ).all()
        if not rows:
            raise NotFound(f"no build {build_id!r}", hint="see: kiln builds list")
        if len(rows) > 1:
            raise NotFound(
                f"build id prefix {build_id!r} is ambiguous",
                hint="matches " + ", ".join(r.id for r in rows) + "; give more characters",
            )
        return rows[0]


def _emit(s: Session, event: events.Event) -> None:
    """Record ``event`` in the transaction of the change it reports (kiln.events.emit)."""
    from kiln.events.emit import emit  # deferred: kiln.events.emit imports the catalog's models

    emit(s, event)


def _serialize_numbering(s: Session, image: NewImage) -> None:
    """On PostgreSQL, builds of one name+version take their numbers one after the other (SQLite
    already serializes writers at BEGIN IMMEDIATE); the unique constraint and retry stay as a net."""
    if s.get_bind().dialect.name == "postgresql":
        key = f"kiln-image-number:{image.name}@{image.version}"
        s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


def _last_log_time(log_path: str) -> datetime | None:
    """When the build log was last written: the best guess of when an interrupted build stopped."""
    try:
        return datetime.fromtimestamp(Path(log_path).stat().st_mtime, UTC)
    except OSError:
        return None
