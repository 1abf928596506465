"""Public records of the registry (CLI ``--json`` and the API use these unchanged)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PublishedState = Literal["active", "deprecated"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PublishedComponent(_Record):
    """One version of a component document in the registry (without the document text)."""

    name: str
    version: str
    digest: str = Field(description="sha256 of the document's bytes, as builds record it")
    description: str = ""
    platform: str = "Linux"
    state: PublishedState = "active"
    builtin: bool = False
    published_by: str
    published: datetime
    deprecated_by: str | None = None
    deprecated: datetime | None = None
    deprecation_reason: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class PublishedRecipe(_Record):
    """One version of a recipe in the registry (without the recipe text)."""

    name: str
    version: str
    digest: str
    description: str = ""
    state: PublishedState = "active"
    components: list[str] = Field(default_factory=list, description="component references as written")
    published_by: str
    published: datetime
    deprecated_by: str | None = None
    deprecated: datetime | None = None
    deprecation_reason: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class ComponentWithDocument(_Record):
    component: PublishedComponent
    document: str


class RecipeWithDocument(_Record):
    recipe: PublishedRecipe
    document: str


class PublishOutcome(_Record):
    """What ``publish`` did: ``created`` False means the same name, version and content were there."""

    created: bool
    kind: Literal["component", "recipe"]
    name: str
    version: str
    digest: str


class Resolution(_Record):
    """A reference ``NAME@PATTERN`` resolved to one exact registry version."""

    name: str
    pattern: str
    version: str
    digest: str
    deprecation_reason: str | None = Field(None, description="set when the chosen version is deprecated")
