"""Webhook configuration: global, or bound to one pipeline; stored in the catalog without its secret.

Only a *reference* to the secret is stored (``env:VAR`` or ``file:PATH``), read by the process that
delivers. The catalog is read by the API, backups and database administrators; an encrypted secret
would need a key kept somewhere else anyway, and the reference leaves the secret where the operator
already manages secrets (systemd credentials, a 0600 file, the service's environment).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from kiln.catalog.models import WebhookRow
from kiln.errors import KilnError, NotFound, UsageError
from kiln.events.model import full_pattern
from kiln.events.signing import secret_key
from kiln.events.targets import check_url

if TYPE_CHECKING:
    from kiln.catalog import Catalog

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TYPE_PATTERN = re.compile(r"^[a-z0-9*?.\[\]-]+$")
MAX_SECRET_BYTES = 4096


class SecretUnavailable(KilnError):
    """The referenced secret cannot be read now (an attempt fails; the value is never shown)."""


class SecretRef(BaseModel):
    """Where a webhook's secret is: an environment variable or a file of the delivering process."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["env", "file"]
    name: str

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        kind, _, name = text.partition(":")
        if kind not in ("env", "file") or not name:
            raise UsageError(f"invalid secret reference {text!r}", hint="env:VAR or file:PATH")
        return cls.model_validate({"kind": kind, "name": name})

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def key(self) -> bytes:
        """The HMAC key, read now from the environment or the file."""
        if self.kind == "env":
            value = os.environ.get(self.name)
            if value is None:
                raise SecretUnavailable(f"webhook secret variable {self.name} is not set in this process")
        else:
            try:
                with open(self.name, "rb") as fh:
                    value = fh.read(MAX_SECRET_BYTES).decode("utf-8", "replace")
            except OSError as exc:
                raise SecretUnavailable(f"webhook secret file {self.name}: {exc.strerror}") from None
        return secret_key(value, str(self))


class WebhookConfig(BaseModel):
    """A webhook as configured (CLI, or a pipeline file's ``webhooks:`` entry with ``pipeline`` set)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(max_length=2000)
    secret: SecretRef
    types: list[str] = Field(default_factory=list, max_length=50)
    """Event type globs (``build.*``, ``dev.kiln.cve.found``); empty: every event."""
    pipeline: str | None = Field(default=None, max_length=255)
    """Only this pipeline's events (their ``pipeline`` attribute); None: every event."""
    allow_private: bool = False

    @field_validator("types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not TYPE_PATTERN.match(pattern):
                raise ValueError(f"invalid event type pattern {pattern!r}")
        return [full_pattern(p) for p in value]


class Webhook(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    url: str
    secret: str  # the reference, never the value
    types: list[str]
    pipeline: str | None
    allow_private: bool
    enabled: bool
    created: datetime


def webhook_of(row: WebhookRow) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        secret=row.secret_ref,
        types=list(row.types),
        pipeline=row.pipeline,
        allow_private=row.allow_private,
        enabled=row.enabled,
        created=row.created,
    )


def check_secret_source(ref: SecretRef) -> None:
    """At configuration time: an env reference names a variable; a file reference an absolute path."""
    if ref.kind == "env" and not ENV_NAME.match(ref.name):
        raise UsageError(f"invalid environment variable name {ref.name!r}")
    if ref.kind == "file" and not Path(ref.name).is_absolute():
        raise UsageError(
            f"secret file {ref.name!r} must be an absolute path (the dispatcher may run elsewhere)"
        )


def add(catalog: Catalog, config: WebhookConfig) -> Webhook:
    check_url(config.url, allow_private=config.allow_private)
    check_secret_source(config.secret)
    with catalog.session(write=True) as s, s.begin():
        row = _row(config)
        s.add(row)
        s.flush()
        return webhook_of(row)


def replace_pipeline_webhooks(s: Session, pipeline: str, configs: list[WebhookConfig]) -> list[int]:
    """For ``kiln pipelines apply``: make ``configs`` the pipeline's webhooks, in the caller's
    transaction (a pipeline's hooks are those with its name; global ones are left alone). URLs are
    checked first; an unchanged webhook keeps its id and delivery log. Returns the ids."""
    for config in configs:
        if config.pipeline not in (None, pipeline):
            raise UsageError(f"webhook {config.url}: bound to pipeline {config.pipeline}, not {pipeline}")
        check_url(config.url, allow_private=config.allow_private)
        check_secret_source(config.secret)
    wanted = [c.model_copy(update={"pipeline": pipeline}) for c in configs]
    rows = s.scalars(select(WebhookRow).where(WebhookRow.pipeline == pipeline)).all()
    existing = {_key(r.url, r.secret_ref, r.types, r.allow_private): r for r in rows}
    ids = []
    for config in wanted:
        row = existing.pop(_key(config.url, str(config.secret), config.types, config.allow_private), None)
        if row is None:
            row = _row(config)
            s.add(row)
            s.flush()
        ids.append(row.id)
    for stale in existing.values():
        s.delete(stale)
    return ids


def _key(url: str, secret: str, types: list[str], allow_private: bool) -> tuple[object, ...]:
    return (url, secret, tuple(types), allow_private)


def _row(config: WebhookConfig) -> WebhookRow:
    return WebhookRow(
        url=config.url,
        secret_ref=str(config.secret),
        types=config.types,
        pipeline=config.pipeline,
        allow_private=config.allow_private,
        enabled=True,
        created=datetime.now(UTC),
    )


def listing(catalog: Catalog, pipeline: str | None = None) -> list[Webhook]:
    query = select(WebhookRow).order_by(WebhookRow.id)
    if pipeline is not None:
        query = query.where(WebhookRow.pipeline == pipeline)
    with catalog.session() as s:
        return [webhook_of(r) for r in s.scalars(query)]


def remove(catalog: Catalog, webhook_id: int) -> None:
    """Delete a webhook with its delivery log."""
    with catalog.session(write=True) as s, s.begin():
        row = s.get(WebhookRow, webhook_id)
        if row is None:
            raise NotFound(f"no webhook {webhook_id}", hint="see: kiln webhooks list")
        s.delete(row)
