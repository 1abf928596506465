"""Webhook delivery to a real HTTP receiver on 127.0.0.1: signatures, retries with back-off, the
delivery log, redelivery, and what is refused (private targets, redirects, missing secrets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook as StandardWebhook

from kiln.catalog import Catalog
from kiln.events import model
from kiln.events.deliveries import get, listing, redeliver
from kiln.events.dispatch import Dispatcher, RetryPolicy
from kiln.events.emit import emit
from kiln.events.targets import TargetRefused
from kiln.events.webhooks import SecretRef, WebhookConfig, add
from tests.events.conftest import Receiver

ENV = SecretRef(kind="env", name="KILN_TEST_HOOK_SECRET")


class Clock:
    """The dispatcher's clock: starts now (signatures carry it) and moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def hook(catalog: Catalog, url: str, **extra: object) -> int:
    return add(catalog, WebhookConfig(url=url, secret=ENV, allow_private=True, **extra)).id  # type: ignore[arg-type]


def test_fails_twice_then_succeeds_gets_the_event_three_times_then_never_again(
    catalog: Catalog, receiver: Receiver, secret: str
) -> None:
    receiver.statuses = [500, 503, 200]
    hook(catalog, receiver.url, types=["build.*"])
    event = model.build_event("succeeded", "ab" * 16, "web", "1.0.0", image="web@1.0.0/1")
    emit(catalog, event)
    emit(catalog, model.image_recorded("web", "1.0.0", 1, "sha256:" + "0" * 64, "ab" * 16))  # not wanted
    clock = Clock()
    dispatcher = Dispatcher(catalog, clock=clock, policy=RetryPolicy(base_delay=10, max_delay=60))

    assert dispatcher.run_once() == 1  # attempt 1: 500
    assert dispatcher.run_once() == 0  # not due again before its back-off
    clock.advance(9.9)
    assert dispatcher.run_once() == 0
    clock.advance(0.1)
    assert dispatcher.run_once() == 1  # attempt 2 after 10 s: 503
    clock.advance(19.9)
    assert dispatcher.run_once() == 0
    clock.advance(0.1)
    assert dispatcher.run_once() == 1  # attempt 3 after 20 s: 200
    for _ in range(5):
        clock.advance(3600)
        assert dispatcher.run_once() == 0
    assert len(receiver.requests) == 3

    verifier = StandardWebhook(secret)
    for request in receiver.requests:
        assert request.headers["content-type"] == "application/cloudevents+json"
        assert request.headers["webhook-id"] == event.id  # the same id on every retry: dedupe on it
        assert verifier.verify(request.body, request.headers) == event.envelope()
        assert secret not in json.dumps(request.headers).replace(request.headers["webhook-signature"], "")
    assert [json.loads(r.body)["type"] for r in receiver.requests] == [model.BUILD_SUCCEEDED] * 3

    [delivery] = listing(catalog, with_log=True)
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 3, 200)
    assert [(a.number, a.status_code, a.error) for a in delivery.log] == [
        (1, 500, "HTTP 500"),
        (2, 503, "HTTP 503"),
        (3, 200, None),
    ]
    assert [a.at for a in delivery.log] == [clock.now - timedelta(seconds=3600 * 5 + s) for s in (30, 20, 0)]
    assert listing(catalog, failed=True) == []  # delivered in the end: not in the --failed list


def test_attempts_and_delay_are_bounded_then_redelivery_starts_over(
    catalog: Catalog, receiver: Receiver, secret: str
) -> None:
    receiver.statuses = [500]
    hook(catalog, receiver.url)
    emit(catalog, model.cve_found("web@1.0.0/1", "CVE-1999-91001", "openssl", "1", "2", "high", "fixable"))
    clock = Clock()
    policy = RetryPolicy(max_attempts=5, base_delay=10, max_delay=30)
    dispatcher = Dispatcher(catalog, clock=clock, policy=policy)
    waits = []
    while dispatcher.run_once():
        due = dispatcher.next_due()
        if due is None:
            break
        waits.append((due - clock.now).total_seconds())
        clock.now = due
    assert waits == [10, 20, 30, 30]  # doubling, capped at max_delay
    assert len(receiver.requests) == 5
    [delivery] = listing(catalog)
    assert (delivery.status, delivery.attempts, delivery.next_attempt) == ("failed", 5, None)
    clock.advance(86400)
    assert dispatcher.run_once() == 0

    receiver.statuses = [200]
    again = redeliver(catalog, delivery.id)
    assert Dispatcher(catalog, policy=policy).run_once() == 1
    assert get(catalog, again).status == "delivered" and get(catalog, again).redelivery_of == delivery.id
    assert len(receiver.requests) == 6
    assert receiver.requests[-1].headers["webhook-id"] == receiver.requests[0].headers["webhook-id"]
    with pytest.raises(Exception, match="no webhook delivery 999"):
        redeliver(catalog, 999)


def test_private_targets_are_refused_unless_allowed(
    catalog: Catalog, receiver: Receiver, secret: str
) -> None:
    for url in (
        receiver.url,
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
    ):
        with pytest.raises(TargetRefused, match="loopback, private or reserved"):
            add(catalog, WebhookConfig(url=url, secret=ENV))
    for url, message in (
        ("file:///etc/passwd", "only http"),
        ("gopher://x/", "only http"),
        ("http://user:pw@example.org/", "credentials in the URL"),
    ):
        with pytest.raises(TargetRefused, match=message):
            add(catalog, WebhookConfig(url=url, secret=ENV, allow_private=True))
    # Checked again at delivery: a webhook whose permission is withdrawn is not sent to.
    webhook_id = hook(catalog, receiver.url)
    with catalog.engine.begin() as conn:
        conn.execute(text("UPDATE webhooks SET allow_private = false WHERE id = :id"), {"id": webhook_id})
    emit(catalog, model.build_event("started", "ab" * 16, "web", "1.0.0"))
    assert Dispatcher(catalog).run_once() == 1
    assert receiver.requests == []
    assert "loopback, private or reserved" in (listing(catalog)[0].last_error or "")


def test_redirects_are_not_followed(catalog: Catalog, receiver: Receiver, secret: str) -> None:
    receiver.statuses = [302]
    receiver.location = receiver.url + "/elsewhere"
    hook(catalog, receiver.url)
    emit(catalog, model.build_event("started", "ab" * 16, "web", "1.0.0"))
    Dispatcher(catalog).run_once()
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert listing(catalog)[0].last_error == "HTTP 302"


def test_the_secret_is_never_stored_and_a_missing_one_fails_the_attempt(
    catalog: Catalog, receiver: Receiver, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook(catalog, receiver.url)
    emit(catalog, model.build_event("started", "ab" * 16, "web", "1.0.0"))
    monkeypatch.delenv("KILN_TEST_HOOK_SECRET")
    Dispatcher(catalog).run_once()
    assert receiver.requests == []
    assert (
        listing(catalog)[0].last_error
        == "webhook secret variable KILN_TEST_HOOK_SECRET is not set in this process"
    )
    monkeypatch.setenv("KILN_TEST_HOOK_SECRET", secret)
    clock = Clock()
    clock.advance(3600)
    Dispatcher(catalog, clock=clock).run_once()
    assert len(receiver.requests) == 1
    with catalog.engine.connect() as conn:
        for table in ("webhooks", "webhook_deliveries", "webhook_attempts", "events"):
            dumped = repr(conn.execute(text(f"SELECT * FROM {table}")).all())
            assert secret not in dumped and secret.removeprefix("whsec_") not in dumped
            assert table != "webhooks" or "env:KILN_TEST_HOOK_SECRET" in dumped


def test_secret_from_a_file(catalog: Catalog, receiver: Receiver, tmp_path: object) -> None:
    from pathlib import Path

    from kiln.events.signing import new_secret

    path = Path(str(tmp_path)) / "hook.secret"
    value = new_secret()
    path.write_text(value + "\n")
    add(
        catalog,
        WebhookConfig(url=receiver.url, secret=SecretRef(kind="file", name=str(path)), allow_private=True),
    )
    emit(catalog, model.build_event("started", "ab" * 16, "web", "1.0.0"))
    Dispatcher(catalog).run_once()
    [request] = receiver.requests
    StandardWebhook(value).verify(request.body, request.headers)


def test_two_dispatchers_never_send_one_delivery_twice(
    catalog: Catalog, receiver: Receiver, secret: str
) -> None:
    import threading

    hook(catalog, receiver.url)
    for n in range(10):
        emit(catalog, model.build_event("started", f"{n:032x}", "web", "1.0.0"))
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.append(Dispatcher(catalog).run_once())) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 10
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(
        {r.headers["webhook-id"] for r in receiver.requests}
    )
    assert len(receiver.requests) == 10


def test_pipeline_webhooks_are_replaced_on_apply(catalog: Catalog, receiver: Receiver) -> None:
    from kiln.errors import UsageError
    from kiln.events.webhooks import listing, replace_pipeline_webhooks

    glob = hook(catalog, receiver.url)
    a = WebhookConfig(url=receiver.url + "/a", secret=ENV, allow_private=True)
    b = WebhookConfig(url=receiver.url + "/b", secret=ENV, types=["pipeline.*"], allow_private=True)
    with catalog.session(write=True) as s, s.begin():
        first = replace_pipeline_webhooks(s, "nightly", [a, b])
    with catalog.session(write=True) as s, s.begin():
        second = replace_pipeline_webhooks(s, "nightly", [b])
    assert second == first[1:]  # unchanged: same id (and delivery log); a is gone
    assert [(h.id, h.pipeline) for h in listing(catalog)] == [(glob, None), (first[1], "nightly")]
    with pytest.raises(TargetRefused), catalog.session(write=True) as s, s.begin():
        replace_pipeline_webhooks(s, "nightly", [WebhookConfig(url="http://10.0.0.1/", secret=ENV)])
    with (
        pytest.raises(UsageError, match="bound to pipeline weekly"),
        catalog.session(write=True) as s,
        s.begin(),
    ):
        replace_pipeline_webhooks(s, "nightly", [a.model_copy(update={"pipeline": "weekly"})])
    assert len(listing(catalog, pipeline="nightly")) == 1
