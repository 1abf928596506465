"""What the image page shows of an image's life: labels, state changes, why it is out of date, and the
channels that point at it."""

from __future__ import annotations

from typing import Any

from kiln.access.tokens import Principal
from kiln.api.promote import channel_order
from kiln.catalog import Catalog, ImageRecord
from kiln.catalog import promotions as moves
from kiln.catalog.labels import image_labels
from kiln.lifecycle.states import STATES, TRANSITIONS, history
from kiln.store import Store


def lifecycle_facts(catalog: Catalog, store: Store, image: ImageRecord) -> dict[str, Any]:
    """Shared by every viewer of the page (cached with it): nothing here depends on the session."""
    order = channel_order(store)
    channels = [c for c in order if (p := moves.current(catalog, image.name, c)) and p.image == image.ref]
    return {
        "labels": image_labels(catalog, image.ref),
        "changes": history(catalog, image.ref),
        "outdated": catalog.outdated_reason(image.ref),
        "channels": channels,
    }


def movable(principal: Principal, image: ImageRecord) -> list[str]:
    """States the page's lifecycle form offers: the legal moves from the image's state, for a logged-in
    session whose token may write this image (none otherwise: the form is not shown)."""
    if principal.token_id is None or not principal.allows("images:write") or not principal.sees(image.name):
        return []
    return [s for s in STATES if s in TRANSITIONS[image.state]]
