"""The CloudEvents envelope, type globs and the Standard Webhooks signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from kiln.events import model
from kiln.events.signing import SecretFormatError, headers, new_secret, secret_key


def test_envelope_is_cloudevents_1_0_structured_json() -> None:
    event = model.build_event("succeeded", "ab" * 16, "web", "1.2.0", image="web@1.2.0/3")
    envelope = json.loads(event.body())
    assert envelope["specversion"] == "1.0"
    assert envelope["type"] == "dev.kiln.build.succeeded"
    assert envelope["subject"] == f"builds/{'ab' * 16}"
    assert envelope["source"].startswith("/kiln/") and envelope["id"] and envelope["time"].endswith("Z")
    assert envelope["datacontenttype"] == "application/json"
    assert envelope["data"] == {
        "build_id": "ab" * 16,
        "recipe": "web",
        "version": "1.2.0",
        "status": "succeeded",
        "error": None,
        "image": "web@1.2.0/3",
    }
    assert "pipeline" not in envelope  # unset optional attributes are left out, as the spec asks
    skipped = model.pipeline_run_skipped("nightly", "no updates available", trigger={"type": "schedule"})
    assert skipped.envelope()["pipeline"] == "nightly"
    assert skipped.type == "dev.kiln.pipeline.run-skipped"
    cancelled = model.build_event("cancelled", "cd" * 16, "web", "1.2.0", error="interrupted")
    assert cancelled.type == "dev.kiln.build.cancelled" and cancelled.data["status"] == "failed"


@pytest.mark.parametrize(
    ("patterns", "matches"),
    [
        ([], True),
        (["*"], True),
        (["build.*"], True),
        (["dev.kiln.build.*"], True),
        (["dev.kiln.build.succeeded"], True),
        (["build.failed"], False),
        (["image.*", "cve.found"], False),
    ],
)
def test_type_globs(patterns: list[str], matches: bool) -> None:
    assert model.type_matches("dev.kiln.build.succeeded", patterns) is matches


def test_signature_verifies_with_the_standard_webhooks_library_and_by_hand() -> None:
    secret = new_secret()
    body = model.image_recorded("web", "1.0.0", 2, "sha256:" + "0" * 64, "ab" * 16).body()
    now = int(time.time())
    signed = headers(secret_key(secret, "test"), "msg_1", now, body)
    assert StandardWebhook(secret).verify(body, signed) == json.loads(body)
    # The documented algorithm, written out independently: base64(HMAC-SHA256(key, id.timestamp.body)).
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, b"msg_1." + str(now).encode() + b"." + body, hashlib.sha256).digest()
    assert signed["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    tampered = body.replace(b"web", b"bad", 1)
    with pytest.raises(Exception, match="No matching signature"):
        StandardWebhook(secret).verify(tampered, signed)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("hunter2-is-my-password", "does not start with 'whsec_'"),
        ("whsec_not base64!", "not base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "decodes to 5 bytes; 24 to 64"),
    ],
)
def test_bad_secrets_are_refused_without_showing_them(value: str, message: str) -> None:
    with pytest.raises(SecretFormatError, match=message) as refused:
        secret_key(value, "env:HOOK")
    assert value not in str(refused.value) and "env:HOOK" in str(refused.value)
