"""Promotion decisions: evaluate, sign (DSSE, like provenance), record, move the channel pointer.

Denied promotions are recorded too (and signed): the decision log says who asked for what and why not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.catalog import Catalog
from kiln.catalog import promotions as moves
from kiln.catalog.promotions import Action, PromotionRecord
from kiln.errors import KilnError
from kiln.evidence.signing import load_private_key, load_public_key, open_envelope, sign_envelope
from kiln.lifecycle.states import require_usable
from kiln.promotion.policy import LoadedPolicy
from kiln.promotion.rules import RuleResult, evaluate

if TYPE_CHECKING:
    from kiln.store import Store

DECISION_TYPE = "https://kiln.dev/promotion-decision/v1"
PAYLOAD_TYPE = "application/vnd.kiln.promotion-decision+json"


class PromotionDenied(KilnError):
    """The policy denied the promotion (recorded); exit code 1."""


def _signed(decision: dict[str, Any], key: Path | None) -> str:
    if key is None:
        raise KilnError(
            "promotion decisions are signed, and no signing key is configured",
            hint="pass --key PATH or set KILN_SIGNING_KEY (create one with: kiln keys generate PATH)",
        )
    payload = json.dumps(decision, sort_keys=True, separators=(",", ":")).encode()
    return sign_envelope(payload, load_private_key(key), PAYLOAD_TYPE).decode()


def _decision(
    action: Action, ref: str, digest: str, channel: str, who: str, now: datetime, **fields: Any
) -> dict[str, Any]:
    return {"_type": DECISION_TYPE, "action": action, "image": {"ref": ref, "digest": digest},
            "channel": channel, "who": who, "at": now.isoformat(), **fields}  # fmt: skip


def promote(
    catalog: Catalog,
    ref: str,
    channel: str,
    policy: LoadedPolicy,
    *,
    key: Path | None,
    who: str,
    now: datetime | None = None,
    store: Store | None = None,
) -> tuple[PromotionRecord, list[RuleResult]]:
    """Evaluate ``channel``'s policy over ``ref``; record the signed decision; raise PromotionDenied
    (after recording) when a rule fails. Promoting the image the channel already points at is a no-op."""
    now = now or datetime.now(UTC)
    image = catalog.get_image(ref)
    require_usable(image, "promoted")
    results = evaluate(catalog, image, channel, policy, now, store)
    allowed = all(r.passed for r in results)
    decision = _decision(
        "promote", image.ref, image.digest, channel, who, now,
        policy={"path": str(policy.path) if policy.path else None, "digest": policy.digest,
                "version": policy.policy.version},
        evidence={e.kind: e.digest for e in image.evidence},
        rules=[r.as_dict() for r in results], allowed=allowed,
    )  # fmt: skip
    envelope = _signed(decision, key)
    record = moves.record(catalog, image.ref, channel=channel, action="promote", allowed=allowed,
                          decision=decision, envelope=envelope, who=who, at=now)  # fmt: skip
    if not allowed:
        failed = [f"{r.rule}: {r.detail}" for r in results if not r.passed]
        raise PromotionDenied(
            f"promotion of {image.ref} to {channel} denied (decision {record.id}):\n  " + "\n  ".join(failed),
            hint="fix the evidence or the policy; every decision is recorded: kiln channels history "
            + image.name,
        )
    return record, results


def rollback(
    catalog: Catalog, name: str, channel: str, *, key: Path | None, who: str, reason: str = "",
    action: Action = "rollback", now: datetime | None = None,
) -> PromotionRecord:  # fmt: skip
    """Point ``channel`` back at the image it held before its current one (recorded and signed)."""
    now = now or datetime.now(UTC)
    history = moves.pointer_moves(catalog, name, channel)
    if not history:
        raise KilnError(f"{name} has never been in {channel}")
    current = history[-1].image
    earlier = [m.image for m in history if m.image != current]
    if not earlier:
        raise KilnError(f"{channel} of {name} has no earlier version than {current} to roll back to")
    # The version that was current just before the current one took over (skipping its repeats).
    target = next(m.image for m in reversed(history[: _first_of_run(history)]) if m.image != current)
    image = catalog.get_image(target)
    decision = _decision(action, image.ref, image.digest, channel, who, now, previous=current, reason=reason,
                         allowed=True)  # fmt: skip
    envelope = _signed(decision, key)
    return moves.record(catalog, image.ref, channel=channel, action=action, allowed=True, decision=decision,
                        envelope=envelope, who=who, at=now)  # fmt: skip


@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    image: str
    failed: list[RuleResult]
    demoted_to: str | None = None


def check_channels(
    catalog: Catalog, name: str, policy: LoadedPolicy, *, key: Path | None, who: str, apply: bool,
    now: datetime | None = None, store: Store | None = None,
) -> list[ChannelStatus]:  # fmt: skip
    """Re-evaluate each channel's current image of ``name`` now (new scans, expired waivers, stale
    evidence, a changed state). With ``apply`` and ``on_violation: demote``, a failing channel moves back
    to the newest earlier version that passes, recorded (and signed) as a demotion with the cause."""
    now = now or datetime.now(UTC)
    statuses = []
    for channel in policy.policy.channels:
        history = moves.pointer_moves(catalog, name, channel)
        if not history:
            continue
        current = history[-1].image
        failed = [
            r
            for r in evaluate(catalog, catalog.get_image(current), channel, policy, now, store)
            if not r.passed
        ]
        status = ChannelStatus(channel, current, failed)
        if failed and apply and policy.policy.on_violation == "demote":
            for earlier in dict.fromkeys(m.image for m in reversed(history) if m.image != current):
                candidate = catalog.get_image(earlier)
                if all(r.passed for r in evaluate(catalog, candidate, channel, policy, now, store)):
                    cause = [r.as_dict() for r in failed]
                    decision = _decision("demote", candidate.ref, candidate.digest, channel, who, now,
                                         previous=current, cause=cause, allowed=True,
                                         policy={"digest": policy.digest})  # fmt: skip
                    envelope = _signed(decision, key)
                    moves.record(catalog, candidate.ref, channel=channel, action="demote", allowed=True,
                                 decision=decision, envelope=envelope, who=who, at=now)  # fmt: skip
                    status = ChannelStatus(channel, current, failed, candidate.ref)
                    break
        statuses.append(status)
    return statuses


def _first_of_run(history: list[PromotionRecord]) -> int:
    """Index of the first move of the trailing run of moves to the current image."""
    index = len(history) - 1
    while index > 0 and history[index - 1].image == history[-1].image:
        index -= 1
    return index


def verify(record: PromotionRecord, public_key: Path) -> None:
    """The stored envelope verifies with ``public_key`` and says exactly what the row says."""
    if record.envelope is None:
        raise KilnError(f"decision {record.id} is not signed")
    payload_type, payload = open_envelope(record.envelope.encode(), load_public_key(public_key))
    if payload_type != PAYLOAD_TYPE:
        raise KilnError(f"decision {record.id}: unexpected payload type {payload_type}")
    signed = json.loads(payload)
    if signed != record.decision:
        raise KilnError(f"decision {record.id}: the catalog's record differs from the signed decision")
    if signed["image"]["ref"] != record.image or signed["channel"] != record.channel:
        raise KilnError(f"decision {record.id}: signed for another image or channel")


def decision_digest(record: PromotionRecord) -> str:
    data = json.dumps(record.decision, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()
