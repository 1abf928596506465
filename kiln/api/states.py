"""One lifecycle state change as the API and the web UI's form make it: disabling and retiring take the
image off its recipe's distribution targets, retiring deletes its artifacts (kiln.lifecycle.move)."""

from __future__ import annotations

import os

from kiln.catalog import Catalog
from kiln.lifecycle.move import Moved, move
from kiln.lifecycle.states import State
from kiln.settings import Settings
from kiln.store import Store


def change_image_state(store: Store, catalog: Catalog, settings: Settings, ref: str, state: State, *,
                       actor: str, reason: str) -> Moved:  # fmt: skip
    """Move ``ref`` to ``state`` (IllegalTransition for an illegal move) as ``actor``, with ``reason``."""
    from kiln.lifecycle.unpublish import unpublisher

    unpublish = None
    if state in ("disabled", "retired"):
        unpublish = unpublisher(settings=settings, environ=os.environ, requester=actor)
    return move(store, catalog, ref, state, actor=actor, reason=reason, unpublish=unpublish)
