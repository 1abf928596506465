"""What the image page shows of an image's life: labels, state changes, why it is out of date, and the
channels that point at it."""

from __future__ import annotations

from typing import Any

from kiln.api.promote import channel_order
from kiln.catalog import Catalog, ImageRecord
from kiln.catalog import promotions as moves
from kiln.catalog.labels import image_labels
from kiln.lifecycle.states import history
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
