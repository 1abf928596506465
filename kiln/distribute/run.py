"""The distribution job: choose targets, preflight them all, publish each, record each attempt.

Re-running after success changes nothing (a target whose newest attempt succeeded with the same
configuration is reported ``unchanged``); ``retry_failed`` publishes only targets whose newest
attempt failed, from the recorded image, without rebuilding.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from kiln.catalog import Catalog
from kiln.catalog import distributions as jobs
from kiln.catalog.schemas import ImageRecord
from kiln.distribute.base import (
    Destination,
    DistributionError,
    PreflightFailed,
    PublishContext,
    destination_for,
)
from kiln.distribute.config import DistributionConfig
from kiln.distribute.spec import Target
from kiln.errors import KilnError
from kiln.lifecycle.states import require_usable
from kiln.settings import Settings

Result = Literal["published", "unchanged", "failed", "skipped", "unpublished"]


@dataclass(frozen=True)
class Outcome:
    target: str
    kind: str
    result: Result
    external: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def _select(config: DistributionConfig, only: list[str] | None) -> list[Target]:
    if not config.targets:
        raise KilnError(f"{config.path}: has no distribution targets", hint="add a `distribution:` list")
    if not only:
        return list(config.targets)
    known = {t.name: t for t in config.targets}
    missing = [n for n in only if n not in known]
    if missing:
        raise KilnError(f"no distribution target {', '.join(missing)} in {config.path}",
                        hint="targets: " + ", ".join(known))  # fmt: skip
    return [known[n] for n in only]


def distribute(
    catalog: Catalog,
    ref: str,
    config: DistributionConfig,
    *,
    settings: Settings,
    environ: Mapping[str, str],
    only: list[str] | None = None,
    retry_failed: bool = False,
    requester: str | None = None,
    log: Any = None,
) -> list[Outcome]:
    """Publish image ``ref`` to the chosen targets; every attempt is recorded, failures included."""
    image = catalog.get_image(ref)
    warning = require_usable(image, "distributed")
    if warning and log is not None:
        log(f"warning: {warning}")
    if settings.store_url:  # built on another machine: its files come from the shared store
        from kiln.readthrough import localized
        from kiln.store import Store

        image = localized(Store.open(settings=settings), image)
    ctx = PublishContext(image=image, settings=settings, environ=environ, base_dir=config.path.parent,
                         boot=config.boot, log=log or (lambda _m: None))  # fmt: skip
    latest = jobs.latest(catalog, image.ref)
    outcomes: dict[str, Outcome] = {}
    todo = []
    for target in _select(config, only):
        last = latest.get(target.name)
        if last is not None and last.status == "succeeded" and last.config_digest == target.digest():
            outcomes[target.name] = Outcome(target.name, target.type, "unchanged", last.external)
        elif retry_failed and (last is None or last.status != "failed"):
            outcomes[target.name] = Outcome(target.name, target.type, "skipped")
        else:
            todo.append((target, destination_for(target, ctx)))
    _preflight(todo, "nothing was published")
    for target, destination in todo:
        job = jobs.start(catalog, image.ref, target=target.name, kind=target.type,
                         config_digest=target.digest(), requester=requester)  # fmt: skip
        began = time.monotonic()
        try:
            external = destination.publish()
        except KilnError as exc:
            jobs.finish(catalog, job, status="failed", external={}, error=exc.message)
            outcomes[target.name] = Outcome(target.name, target.type, "failed", error=exc.message,
                                            seconds=time.monotonic() - began)  # fmt: skip
            continue
        except Exception as exc:  # a library's own error (boto3, httpx): record it, keep going
            message = f"{type(exc).__name__}: {exc}"
            jobs.finish(catalog, job, status="failed", external={}, error=message)
            outcomes[target.name] = Outcome(target.name, target.type, "failed", error=message,
                                            seconds=time.monotonic() - began)  # fmt: skip
            continue
        seconds = time.monotonic() - began
        external = {**external, "seconds": round(seconds, 3)}
        jobs.finish(catalog, job, status="succeeded", external=external)
        outcomes[target.name] = Outcome(target.name, target.type, "published", external, seconds=seconds)
    return [outcomes[t.name] for t in _select(config, only)]


def _preflight(todo: list[tuple[Target, Destination]], consequence: str) -> None:
    problems = []
    for target, destination in todo:
        try:
            destination.preflight()
        except PreflightFailed as exc:
            problems.append(f"{target.name}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    if problems:
        raise PreflightFailed(f"preflight failed, {consequence}:\n  " + "\n  ".join(problems))


def preflight_planned(
    config: DistributionConfig,
    *,
    name: str,
    version: str,
    settings: Settings,
    environ: Mapping[str, str],
    only: list[str] | None = None,
) -> list[str]:
    """Before a build: check every target's credentials, endpoint and bucket/repository for the image
    the recipe will make (templates render with build 0); returns the targets checked."""
    placeholder = ImageRecord(
        name=name, version=version, build=0, digest="sha256:" + "0" * 64, created=datetime.now(UTC),
        parent="", parent_digest=None, recipe_digest="", description="", size=0, state="active",
        build_id="", components=[], artifacts=[], evidence=[],
    )  # fmt: skip
    ctx = PublishContext(image=placeholder, settings=settings, environ=environ, base_dir=config.path.parent,
                         boot=config.boot, planned=True)  # fmt: skip
    targets = _select(config, only)
    _preflight([(t, destination_for(t, ctx)) for t in targets], "do not start the build")
    return [t.name for t in targets]


def tag_channel(
    catalog: Catalog,
    ref: str,
    config: DistributionConfig,
    channel: str,
    *,
    settings: Settings,
    environ: Mapping[str, str],
) -> list[str]:
    """After a promotion: tag the image ``channel`` in every OCI target that asks for channel tags and
    where it is published; returns the tags written."""
    from kiln.distribute.destinations.oci import Oci
    from kiln.distribute.spec import OciTarget

    image = catalog.get_image(ref)
    ctx = PublishContext(image=image, settings=settings, environ=environ, base_dir=config.path.parent)
    latest = jobs.latest(catalog, image.ref)
    written: list[str] = []
    for target in config.targets:
        last = latest.get(target.name)
        if isinstance(target, OciTarget) and target.channel_tags and last and last.status == "succeeded":
            written += Oci(target, ctx).tag(last.external, channel)
    return written


def unpublish(
    catalog: Catalog,
    ref: str,
    config: DistributionConfig,
    *,
    settings: Settings,
    environ: Mapping[str, str],
    only: list[str] | None = None,
    requester: str | None = None,
) -> list[Outcome]:
    """Remove the image from every target it was published to; orphans are recorded and returned."""
    image = catalog.get_image(ref)
    ctx = PublishContext(image=image, settings=settings, environ=environ, base_dir=config.path.parent,
                         boot=config.boot)  # fmt: skip
    latest = jobs.latest(catalog, image.ref)
    outcomes = []
    for target in _select(config, only):
        last = latest.get(target.name)
        if last is None or last.status != "succeeded":
            outcomes.append(Outcome(target.name, target.type, "skipped"))
            continue
        job = jobs.start(catalog, image.ref, target=target.name, kind=target.type,
                         config_digest=target.digest(), requester=requester)  # fmt: skip
        try:
            orphans = destination_for(target, ctx).unpublish(last.external)
        except Exception as exc:  # anything it could not remove is an orphan
            orphans = [f"{type(exc).__name__}: {exc}"]
        external = {**last.external, "orphans": orphans}
        jobs.finish(catalog, job, status="unpublished" if not orphans else "failed", external=external,
                    error="; ".join(orphans) or None)  # fmt: skip
        outcomes.append(Outcome(target.name, target.type, "unpublished" if not orphans else "failed",
                                external, "; ".join(orphans) or None))  # fmt: skip
    return outcomes


__all__ = ["DistributionError", "Outcome", "distribute", "preflight_planned", "unpublish"]
