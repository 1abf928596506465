"""SQLAlchemy 2 ORM tables of the catalog. Every change here needs an Alembic migration in
``migrations/versions`` (a test compares these models with the migrated schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC (SQLite keeps no zone) and returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class BuildRow(Base):
    __tablename__ = "builds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recipe_name: Mapped[str] = mapped_column(String(255))
    recipe_version: Mapped[str] = mapped_column(String(64))
    recipe_path: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    started: Mapped[datetime]
    finished: Mapped[datetime | None]
    log_path: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    pid_start: Mapped[int | None] = mapped_column(BigInteger)
    """Start time of the build process (clock ticks since boot), so a reused pid is not mistaken."""

    image: Mapped[ImageRow | None] = relationship(back_populates="build", uselist=False)


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (
        UniqueConstraint("name", "version", "build_number", name="uq_images_name_version_build"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str] = mapped_column(String(64))
    build_number: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(100), index=True)
    created: Mapped[datetime]
    recorded: Mapped[datetime]
    parent: Mapped[str] = mapped_column(String(512), index=True)
    parent_digest: Mapped[str | None] = mapped_column(String(100), index=True)
    recipe_digest: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), index=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("builds.id"), unique=True)
    lock: Mapped[dict[str, Any] | None]

    build: Mapped[BuildRow] = relationship(back_populates="image")
    components: Mapped[list[ComponentRow]] = relationship(
        order_by="ComponentRow.position", cascade="all, delete-orphan"
    )
    artifacts: Mapped[list[ArtifactRow]] = relationship(
        order_by="ArtifactRow.position", cascade="all, delete-orphan"
    )
    evidence: Mapped[list[EvidenceRow]] = relationship(
        order_by="EvidenceRow.position", cascade="all, delete-orphan"
    )
    packages: Mapped[list[PackageRow]] = relationship(cascade="all, delete-orphan", lazy="raise_on_sql")
    labels: Mapped[list[LabelRow]] = relationship(cascade="all, delete-orphan", lazy="raise_on_sql")


class _ImageChild:
    """Columns every per-image child table has."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)


class ComponentRow(_ImageChild, Base):
    __tablename__ = "image_components"

    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(100))
    parameters: Mapped[dict[str, Any]]


class ArtifactRow(_ImageChild, Base):
    __tablename__ = "image_artifacts"

    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)


class EvidenceRow(_ImageChild, Base):
    __tablename__ = "image_evidence"

    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(100))
    summary: Mapped[dict[str, Any]]


class PackageRow(_ImageChild, Base):
    __tablename__ = "image_packages"
    __table_args__ = (Index("ix_image_packages_name_version", "name", "version"),)

    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    architecture: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(255), index=True)
    source_version: Mapped[str] = mapped_column(String(255))


class LabelRow(_ImageChild, Base):
    """A ``key=value`` label on an image version (kiln.catalog.labels validates both)."""

    __tablename__ = "image_labels"
    __table_args__ = (
        UniqueConstraint("image_id", "key", name="uq_image_labels_image_key"),
        Index("ix_image_labels_key_value", "key", "value"),
    )

    key: Mapped[str] = mapped_column(String(317))
    value: Mapped[str] = mapped_column(String(63))


class DistributionRow(Base):
    """One attempt to publish an image version to one distribution target (a job of its own)."""

    __tablename__ = "distributions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    config_digest: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    external: Mapped[dict[str, Any]]
    started: Mapped[datetime]
    finished: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    requester: Mapped[str | None] = mapped_column(String(255))


class PromotionRow(Base):
    """A promotion decision (allowed or denied) or a rollback of a channel of an image name."""

    __tablename__ = "promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_name: Mapped[str] = mapped_column(String(255), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    allowed: Mapped[bool]
    decision: Mapped[dict[str, Any]]
    envelope: Mapped[str | None] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime]


class StateChangeRow(Base):
    """One lifecycle state change of an image version: who, when, why (kiln.lifecycle.states)."""

    __tablename__ = "image_state_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    details: Mapped[dict[str, Any]]  # e.g. the policy rule, files removed by a retire


class TokenRow(Base):
    """An API token: only an HMAC of it is stored (kiln.access.tokens)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public part, shown in listings
    name: Mapped[str] = mapped_column(String(255), unique=True)
    digest: Mapped[str] = mapped_column(String(64))  # HMAC-SHA256 of the whole token, hex
    scopes: Mapped[list[str]] = mapped_column(JSON)
    images: Mapped[list[str] | None] = mapped_column(JSON)  # image name patterns (None: every image)
    created: Mapped[datetime]
    expires: Mapped[datetime | None]
    revoked: Mapped[datetime | None]
    last_used: Mapped[datetime | None]


class AuditRow(Base):
    """One mutating call of the API (or web UI): who, what, when, from where, and the result."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(255))
    target: Mapped[str | None] = mapped_column(Text)
    remote: Mapped[str] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)


class EventRow(Base):
    """One CloudEvent (kiln.events): append-only; ``id`` is the cursor ``kiln events --follow`` polls."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)  # the CloudEvents id
    type: Mapped[str] = mapped_column(String(128), index=True)
    source: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(Text)
    pipeline: Mapped[str | None] = mapped_column(String(255))
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    data: Mapped[dict[str, Any]]


class WebhookRow(Base):
    """A webhook: where events go. The secret is a reference (``env:VAR``, ``file:PATH``), never a value."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text)
    secret_ref: Mapped[str] = mapped_column(Text)
    types: Mapped[list[str]] = mapped_column(JSON)
    pipeline: Mapped[str | None] = mapped_column(String(255))
    allow_private: Mapped[bool]
    enabled: Mapped[bool]
    created: Mapped[datetime]


class DeliveryRow(Base):
    """One event owed to one webhook: pending until delivered or out of attempts."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event_row: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    created: Mapped[datetime]
    finished: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    redelivery_of: Mapped[int | None] = mapped_column(Integer)


class DeliveryAttemptRow(Base):
    """One HTTP attempt of a delivery (the delivery log); no header or secret is kept."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class BuildJobRow(Base):
    """A build queued for the scale-out executor (kiln.executors.queue): where it waits, what it needs,
    and the fencing token of its current attempt (only that attempt may record the build's result)."""

    __tablename__ = "build_jobs"

    build_id: Mapped[str] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger, index=True)  # procrastinate_jobs.id
    queue: Mapped[str] = mapped_column(String(255))
    requirements: Mapped[dict[str, Any]]
    queueing_lock: Mapped[str | None] = mapped_column(String(64))  # identical requests wait once
    attempt: Mapped[int] = mapped_column(Integer)  # 0 until a worker claims it
    max_attempts: Mapped[int] = mapped_column(Integer)
    submitted: Mapped[datetime]


class BuildAttemptRow(Base):
    """One attempt of a queued build on one worker (history: a retried build keeps every attempt)."""

    __tablename__ = "build_attempts"
    __table_args__ = (UniqueConstraint("build_id", "attempt", name="uq_build_attempts_build_attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    build_id: Mapped[str] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(32))
    host: Mapped[str] = mapped_column(String(255))
    started: Mapped[datetime]
    finished: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))  # succeeded, failed, lost, cancelled
    error: Mapped[str | None] = mapped_column(Text)


class WorkerRow(Base):
    """A registered build worker (``kiln worker``) and what it can run."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queue: Mapped[str] = mapped_column(String(64))
    capabilities: Mapped[dict[str, Any]]
    concurrency: Mapped[int] = mapped_column(Integer)
    started: Mapped[datetime]
    last_seen: Mapped[datetime]
    stopped: Mapped[datetime | None]
