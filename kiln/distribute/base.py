"""The destination plug-in contract: one class per target kind, registered by subclassing.

Each destination gets its validated spec and a :class:`PublishContext` and implements ``preflight``
(credentials resolve, endpoint reachable, bucket/repository exists: raise :class:`PreflightFailed`),
``publish`` (returns the external ids to record) and ``unpublish`` (returns what it could not remove).
Errors must never contain credentials: destinations read them from the environment or the usual
files and only ever name where they looked.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from kiln.catalog.schemas import ImageRecord
from kiln.distribute.files import PublishedFile, image_files, manifest_json
from kiln.errors import KilnError
from kiln.settings import Settings

External = dict[str, Any]
TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class DistributionError(KilnError):
    """Publishing to a target failed (recorded as the target's error; retry with --retry-failed)."""


class PreflightFailed(KilnError):
    """A target is not ready: nothing was published."""


@dataclass(frozen=True)
class PublishContext:
    """What a destination may use: the image, where relative paths start, the environment
    (credentials are looked up in it, never copied anywhere) and a progress callback."""

    image: ImageRecord
    settings: Settings
    environ: Mapping[str, str]
    base_dir: Path = field(default_factory=Path.cwd)
    boot: str | None = None  # the recipe's disk boot mode (uefi, bios, hybrid), for AMIs
    planned: bool = False  # a preflight before the build: ``image`` is a placeholder without files
    log: Callable[[str], None] = lambda _message: None

    def render(self, template: str) -> str:
        image = self.image
        values = {
            "name": image.name,
            "version": image.version,
            "build": str(image.build),
            "date": image.created.strftime("%Y%m%d"),
            "digest_short": image.digest.removeprefix("sha256:")[:12],
        }
        return TEMPLATE.sub(lambda m: values[m.group(1)], template)

    def files(self) -> list[PublishedFile]:
        return image_files(self.image)

    def manifest(self) -> bytes:
        return manifest_json(self.image, self.files())


class Destination(ABC):
    """Base class; subclasses set ``kind`` (the spec's ``type``) and ``Spec``."""

    kind: ClassVar[str]
    Spec: ClassVar[type[BaseModel]]
    registry: ClassVar[dict[str, type[Destination]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is None:
            return  # an abstract intermediate class
        if kind in Destination.registry:
            raise TypeError(
                f"destination {kind} registered twice ({Destination.registry[kind].__qualname__})"
            )
        Destination.registry[kind] = cls

    def __init__(self, spec: Any, ctx: PublishContext) -> None:
        self.spec = spec
        self.ctx = ctx

    @abstractmethod
    def preflight(self) -> None:
        """Check that publishing can work; raise PreflightFailed naming what is wrong."""

    @abstractmethod
    def publish(self) -> External:
        """Publish (idempotently: what is already there unchanged stays); return the external ids."""

    @abstractmethod
    def unpublish(self, external: External) -> list[str]:
        """Remove what ``publish`` returned; return what could not be removed (orphans)."""


def destination_for(spec: Any, ctx: PublishContext) -> Destination:
    import kiln.distribute.destinations  # noqa: F401  (registers every destination)

    try:
        cls = Destination.registry[spec.type]
    except KeyError:
        raise KilnError(f"no destination of type {spec.type!r}") from None
    return cls(spec, ctx)
