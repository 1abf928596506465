"""Events are written with the state change they report, and read back in order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from kiln.catalog import Catalog
from kiln.catalog.models import DeliveryRow, EventRow
from kiln.errors import KilnError
from kiln.events import model
from kiln.events.emit import emit
from kiln.events.stream import BadSince, follow, page, parse_since, recent
from kiln.events.webhooks import SecretRef, WebhookConfig, add
from tests.catalog.conftest import new_image


def types(catalog: Catalog) -> list[str]:
    return [e.type.removeprefix("dev.kiln.") for _, e in page(catalog)]


def test_a_build_records_started_succeeded_and_image_recorded(
    catalog: Catalog, record_image: Callable[..., str]
) -> None:
    build_id = record_image("web", "1.0.0")
    assert types(catalog) == ["build.started", "build.succeeded", "image.recorded"]
    events = {e.type: e for _, e in page(catalog)}
    image = events[model.IMAGE_RECORDED]
    assert image.subject == "images/web@1.0.0/1"
    assert image.data["build_id"] == build_id and image.data["digest"].startswith("sha256:")
    assert events[model.BUILD_SUCCEEDED].data["image"] == "web@1.0.0/1"


def test_failed_and_cancelled_builds(catalog: Catalog, tmp_path: Path) -> None:
    first = catalog.start_build(recipe_name="r", recipe_version="1.0.0", recipe_path="p", log_path="l")
    second = catalog.start_build(recipe_name="r", recipe_version="1.0.0", recipe_path="p", log_path="l")
    catalog.fail_build(first, "step Explode failed")
    catalog.fail_build(second, "interrupted", cancelled=True)
    catalog.fail_build(second, "interrupted", cancelled=True)  # already failed: no second event
    by_type = {e.type: e for _, e in page(catalog)}
    assert types(catalog) == ["build.started", "build.started", "build.failed", "build.cancelled"]
    assert by_type[model.BUILD_FAILED].data["error"] == "step Explode failed"
    assert by_type[model.BUILD_CANCELLED].subject == f"builds/{second}"


def test_no_event_without_the_state_change(catalog: Catalog) -> None:
    """finish_build refused (the build is not running): its transaction, events included, rolls back."""
    build_id = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="p", log_path="l")
    catalog.fail_build(build_id, "boom")
    with pytest.raises(KilnError, match="only a running build can finish"):
        catalog.finish_build(build_id, new_image())
    assert types(catalog) == ["build.started", "build.failed"]


def test_emit_in_the_callers_transaction(catalog: Catalog) -> None:
    with catalog.session(write=True) as s:
        with s.begin():
            emit(s, model.image_state_changed("web@1.0.0/1", "active", "deprecated", "policy keep-3"))
        with pytest.raises(RuntimeError), s.begin():
            emit(s, model.image_state_changed("web@1.0.0/1", "deprecated", "disabled"))
            raise RuntimeError("the lifecycle change failed")
    [(_, event)] = page(catalog)
    assert event.data == {
        "image": "web@1.0.0/1",
        "previous": "active",
        "state": "deprecated",
        "reason": "policy keep-3",
    }


def test_deliveries_are_created_for_the_webhooks_that_want_the_event(catalog: Catalog) -> None:
    ref = SecretRef(kind="env", name="HOOK")
    every = add(catalog, WebhookConfig(url="http://127.0.0.1/a", secret=ref, allow_private=True))
    builds = add(
        catalog, WebhookConfig(url="http://127.0.0.1/b", secret=ref, types=["build.*"], allow_private=True)
    )
    nightly = add(
        catalog, WebhookConfig(url="http://127.0.0.1/c", secret=ref, pipeline="nightly", allow_private=True)
    )
    emit(catalog, model.build_event("started", "ab" * 16, "web", "1.0.0"))
    emit(catalog, model.pipeline_run_skipped("nightly", "no updates"))
    emit(catalog, model.pipeline_run_skipped("weekly", "no updates"))
    with catalog.session() as s:
        pairs = sorted(
            (d.webhook_id, e.type)
            for d, e in s.execute(
                select(DeliveryRow, EventRow).join(EventRow, EventRow.id == DeliveryRow.event_row)
            ).all()
        )
    assert pairs == sorted(
        [
            (every.id, model.BUILD_STARTED),
            (every.id, model.PIPELINE_RUN_SKIPPED),
            (every.id, model.PIPELINE_RUN_SKIPPED),
            (builds.id, model.BUILD_STARTED),
            (nightly.id, model.PIPELINE_RUN_SKIPPED),
        ]
    )


def test_recent_since_and_type_filters(catalog: Catalog) -> None:
    old = datetime(2026, 1, 1, tzinfo=UTC)
    emit(catalog, model.Event(type=model.BUILD_STARTED, time=old, subject="builds/old"))
    for n in range(5):
        emit(catalog, model.build_event("started", f"{n:032x}", "web", "1.0.0"))
    emit(
        catalog,
        model.cve_found(
            "web@1.0.0/1", "CVE-1999-91001", "openssl", "3.0.11-1", "3.0.13-1", "high", "fixable"
        ),
    )
    assert [e.subject for _, e in recent(catalog, limit=2)] == [
        f"builds/{4:032x}",
        "images/web@1.0.0/1/CVE-1999-91001",
    ]
    assert len(recent(catalog, types=["build.*"])) == 6
    assert len(recent(catalog, since=old + timedelta(days=1), types=["build.*"])) == 5
    assert [e.type for _, e in recent(catalog, types=["cve.*"])] == [model.CVE_FOUND]


def test_parse_since() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since("2026-12-01T10:00:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    with pytest.raises(BadSince, match="not a duration"):
        parse_since("yesterday")


def test_follow_yields_new_events_as_they_are_committed(catalog: Catalog) -> None:
    emit(catalog, model.build_event("started", "0" * 32, "web", "1.0.0"))
    stop = threading.Event()
    seen: list[str] = []

    def reader() -> None:
        for _, event in follow(catalog, after=1, types=["build.succeeded"], stop=stop, poll=0.05):
            seen.append(event.subject or "")
            if len(seen) == 2:
                stop.set()

    thread = threading.Thread(target=reader)
    thread.start()
    emit(catalog, model.build_event("succeeded", "1" * 32, "web", "1.0.0"))
    emit(catalog, model.build_event("failed", "2" * 32, "web", "1.0.0"))
    emit(catalog, model.build_event("succeeded", "3" * 32, "web", "1.0.0"))
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert seen == [f"builds/{'1' * 32}", f"builds/{'3' * 32}"]
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(EventRow)) == 4


def test_a_build_whose_process_died_gets_its_failed_event(catalog_url: str, catalog: Catalog) -> None:
    import sys

    from kiln.sandbox.run import run

    script = (
        "import sys; from kiln.catalog import Catalog; c = Catalog.open(sys.argv[1]); "
        "print(c.start_build(recipe_name='web', recipe_version='1.0.0', recipe_path='r', log_path='l'))"
    )
    dead = run([sys.executable, "-c", script, catalog_url], timeout=120).stdout.strip()
    with Catalog.open(catalog_url) as reopened:  # opening reaps it
        events = [e for _, e in page(reopened)]
    assert [(e.type, e.subject) for e in events] == [
        (model.BUILD_STARTED, f"builds/{dead}"),
        (model.BUILD_FAILED, f"builds/{dead}"),
    ]
    assert events[1].data["error"].startswith("interrupted: the build process")
