"""``GET /api/v1/events/stream`` with a real HTTP client against a real ``kiln serve`` (uvicorn on
loopback): an event committed after connecting arrives, Last-Event-ID resumes after it, a token limited
to ``team-a-*`` never sees another image's event, and a sixth concurrent stream of a token is 429 until
one closes. Keep-alive comments and the stream's end are checked in-process with tuned timings."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.api.eventstream import MAX_STREAMS_PER_TOKEN, slots_of
from kiln.catalog import Catalog
from kiln.events.emit import emit
from kiln.events.model import image_state_changed
from kiln.store import Store
from tests.api.conftest import make_client
from tests.api.seed import Seeded, seed
from tests.api.server import kiln_serve


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return seed(tmp_path_factory.mktemp("stream-home"))


@pytest.fixture(scope="module")
def catalog(home: Seeded) -> Iterator[Catalog]:
    with Catalog.open(Store.open_at(home.home, home.home / "cache").database_url) as c:
        yield c


@pytest.fixture(scope="module")
def url(home: Seeded) -> Iterator[str]:
    # One process: the stream cap is per server process (docs/events.md); with the default of one per
    # CPU the kernel spreads a token's streams over them and the sixth may land where there is room.
    with kiln_serve(home.home, "--no-webhooks", "--workers", "1") as base:
        yield base


def token(home: Seeded, catalog: Catalog, name: str, images: list[str] | None = None) -> dict[str, str]:
    secret, _ = create_token(catalog, server_secret(home.home), name, ["builds:read"], None, images=images)
    return {"Authorization": f"Bearer {secret}"}


def changed(catalog: Catalog, image: str) -> int:
    """Commit a state-changed event for ``image`` (as the lifecycle does) and return its cursor id."""
    return emit(catalog, image_state_changed(image, "active", "deprecated", "test"))


@contextmanager
def stream(url: str, auth: dict[str, str], **headers: str) -> Iterator[Iterator[tuple[int, dict[str, Any]]]]:
    """An open stream as (id, CloudEvent) pairs; reading more than 10 s without a frame fails."""
    with (
        httpx.Client(timeout=httpx.Timeout(10.0)) as client,
        client.stream(
            "GET", url + "/api/v1/events/stream", headers={**auth, **headers, "Accept": "text/event-stream"}
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")

        lines = response.iter_lines()
        assert next(lines) == "retry: 3000"  # sent at once: the stream is open before events are made

        def frames() -> Iterator[tuple[int, dict[str, Any]]]:
            event_id = None
            for line in lines:
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    assert event_id is not None
                    yield event_id, json.loads(line[6:])

        yield frames()


def opened(url: str, auth: dict[str, str]) -> int:
    """The status of a new stream (closed again at once)."""
    with httpx.stream("GET", url + "/api/v1/events/stream", headers=auth, timeout=10) as response:
        return response.status_code


def test_new_events_arrive_and_last_event_id_resumes(url: str, home: Seeded, catalog: Catalog) -> None:
    auth = token(home, catalog, "follower")
    changed(catalog, "before@1.0.0/1")  # committed before connecting: not sent (no `after` given)
    with stream(url, auth) as frames:
        first = changed(catalog, "web@1.0.0/1")
        event_id, event = next(frames)
        assert event_id == first
        assert event["type"] == "dev.kiln.image.state-changed" and event["specversion"] == "1.0"
        assert event["data"] == {"image": "web@1.0.0/1", "previous": "active", "state": "deprecated",
                                 "reason": "test"}  # fmt: skip
    later = [changed(catalog, f"web@1.0.{n}/1") for n in (1, 2)]
    with stream(url, auth, **{"Last-Event-ID": str(first)}) as frames:
        assert [next(frames)[0] for _ in later] == later
        live = changed(catalog, "web@1.0.3/1")
        assert next(frames)[0] == live  # then live again
    polled = httpx.get(url + "/api/v1/events", params={"after": first}, headers=auth).json()
    assert [e["data"]["image"] for e in polled["items"]] == ["web@1.0.1/1", "web@1.0.2/1", "web@1.0.3/1"]


def test_a_token_limited_to_team_a_sees_only_team_a(url: str, home: Seeded, catalog: Catalog) -> None:
    auth = token(home, catalog, "team-a-follower", images=["team-a-*"])
    with stream(url, auth) as frames:
        start = changed(catalog, "team-b-web@1.0.0/1")
        changed(catalog, "web@1.0.0/1")
        mine = changed(catalog, "team-a-web@1.0.0/1")
        event_id, event = next(frames)
        assert event_id == mine and event["data"]["image"] == "team-a-web@1.0.0/1"
    with stream(url, auth, **{"Last-Event-ID": str(start - 1)}) as frames:
        event_id, event = next(frames)
        assert event_id == mine and event["data"]["image"] == "team-a-web@1.0.0/1"
    polled = httpx.get(url + "/api/v1/events", params={"after": start - 1}, headers=auth).json()
    assert [e["data"]["image"] for e in polled["items"]] == ["team-a-web@1.0.0/1"]


def test_streams_per_token_are_capped_and_freed_on_disconnect(
    url: str, home: Seeded, catalog: Catalog
) -> None:
    auth = token(home, catalog, "greedy")
    with ExitStack() as open_streams:
        for _ in range(MAX_STREAMS_PER_TOKEN):
            open_streams.enter_context(stream(url, auth))
        refused = httpx.get(
            url + "/api/v1/events/stream", headers=auth, timeout=10
        )  # a problem: not a stream
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert (
            refused.json()["detail"]
            == f"{MAX_STREAMS_PER_TOKEN} event streams are open for this token already"
        )
        with stream(url, token(home, catalog, "other")) as frames:  # the cap is per token
            live = changed(catalog, "web@2.0.0/1")
            assert next(frames)[0] == live
    # The client went away: the server notices within a poll and gives the slots back.
    deadline = time.monotonic() + 5
    while opened(url, auth) == 429:
        assert time.monotonic() < deadline, "the slots were not given back"
        time.sleep(0.1)
    with ExitStack() as again:
        for _ in range(MAX_STREAMS_PER_TOKEN):
            again.enter_context(stream(url, auth))


def test_keep_alive_comments_and_bounded_lifetime(home: Seeded, catalog: Catalog) -> None:
    auth = token(home, catalog, "quiet")
    with make_client(home.home) as client:
        slots = slots_of(client.app)  # type: ignore[arg-type]
        slots.keepalive, slots.poll, slots.max_seconds = 0.2, 0.05, 1.0
        body = client.get("/api/v1/events/stream", headers=auth).text  # ends after max_seconds
        assert body.startswith("retry: 3000\n\n") and body.count(": keep-alive\n\n") >= 3
        assert "data:" not in body
        assert slots.active == {}


def test_the_server_stops_with_a_stream_open(home: Seeded, catalog: Catalog) -> None:
    """SIGTERM cancels open streams after the grace period instead of waiting for them forever (the
    helper sends SIGTERM, then SIGKILL after 10 s)."""
    from kiln.api.server import SHUTDOWN_GRACE

    auth = token(home, catalog, "stays")
    server = kiln_serve(home.home, "--no-webhooks")
    base = server.__enter__()
    try:
        with stream(base, auth):
            stopping = time.monotonic()
            server.__exit__(None, None, None)  # stopped while the client still reads
            stopped = time.monotonic() - stopping
    finally:
        server.__exit__(None, None, None)
    assert stopped < SHUTDOWN_GRACE + 3
