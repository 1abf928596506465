"""Webhook signatures, as the Standard Webhooks specification defines them (standardwebhooks.com),
so receivers can verify with its libraries (``standardwebhooks`` on PyPI, npm, Go, ...):

- ``webhook-id``: the event's CloudEvents ``id`` (the same on every retry and redelivery: dedupe on it)
- ``webhook-timestamp``: integer seconds since the Unix epoch when the attempt was signed
- ``webhook-signature``: ``v1,`` + base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}"))

The secret is ``whsec_`` + base64 of 24 to 64 random bytes; the HMAC key is the decoded bytes.
Receivers must compare in constant time and refuse timestamps more than a few minutes off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from kiln.errors import KilnError

PREFIX = "whsec_"
MIN_KEY, MAX_KEY = 24, 64


class SecretFormatError(KilnError):
    """A webhook secret that is not ``whsec_<base64>`` (the value itself is never shown)."""

    exit_code = 2


def new_secret() -> str:
    """A fresh secret in the Standard Webhooks format."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str, where: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ``where`` names its source in errors."""
    value = secret.strip()
    if not value.startswith(PREFIX):
        raise SecretFormatError(
            f"webhook secret from {where} does not start with {PREFIX!r}",
            hint="make one with: kiln webhooks new-secret",
        )
    try:
        key = base64.b64decode(value[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SecretFormatError(f"webhook secret from {where} is not base64 after {PREFIX!r}") from None
    if not MIN_KEY <= len(key) <= MAX_KEY:
        raise SecretFormatError(
            f"webhook secret from {where} decodes to {len(key)} bytes; {MIN_KEY} to {MAX_KEY} are needed"
        )
    return key


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, body),
    }
