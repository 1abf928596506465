"""Tables of the registry: published component documents and recipes, by name and semantic version.

A row is immutable once written (name + version + digest); only its state moves ``active →
deprecated``, recording who, when and why. Registered on the catalog's one ``Base``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kiln.catalog.models import Base


class _Published:
    """Columns every published document has."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(100))
    document: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    published_by: Mapped[str] = mapped_column(String(255))
    published: Mapped[datetime]
    deprecated_by: Mapped[str | None] = mapped_column(String(255))
    deprecated: Mapped[datetime | None]
    deprecation_reason: Mapped[str | None] = mapped_column(Text)


class PublishedComponentRow(_Published, Base):
    __tablename__ = "registry_components"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_registry_components_name_version"),)

    platform: Mapped[str] = mapped_column(String(16))
    builtin: Mapped[bool]


class PublishedRecipeRow(_Published, Base):
    __tablename__ = "registry_recipes"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_registry_recipes_name_version"),)

    components: Mapped[list[Any]] = mapped_column(JSON)  # the component references as written
