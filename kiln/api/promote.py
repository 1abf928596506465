"""A promotion on behalf of an API token or a web session: the channel's policy (DATA_DIR's
promotion-policy.yaml, else the built-in one), a signed decision recorded either way, and the registry
targets that ask for channel tags re-tagged (as ``kiln promote``)."""

from __future__ import annotations

import os
from pathlib import Path

from kiln.api.problems import ApiError
from kiln.catalog import Catalog
from kiln.catalog.promotions import PromotionRecord
from kiln.settings import Settings
from kiln.store import Store


def policy_path(store: Store) -> Path | None:
    default = store.home / "promotion-policy.yaml"
    return default if default.is_file() else None


def channel_order(store: Store) -> list[str]:
    from kiln.promotion.policy import load_policy

    return list(load_policy(policy_path(store)).policy.channels)


def _tag_channel(catalog: Catalog, ref: str, channel: str, settings: Settings) -> None:
    from kiln.distribute.config import load_distribution
    from kiln.distribute.run import tag_channel

    image = catalog.get_image(ref)
    recipe = Path(catalog.get_build(image.build_id).recipe_path)
    if recipe.is_file():
        tag_channel(catalog, image.ref, load_distribution(recipe, recipe), channel, settings=settings,
                    environ=os.environ)  # fmt: skip


def promote_image(
    catalog: Catalog, store: Store, settings: Settings, ref: str, channel: str, *, who: str
) -> PromotionRecord:
    """Promote ``ref`` into ``channel``; a denial raises PromotionDenied (409) after it is recorded."""
    from kiln.promotion.decide import promote
    from kiln.promotion.policy import load_policy

    if settings.signing_key is None:
        raise ApiError(
            409,
            "promotion decisions are signed, and this server has no signing key",
            hint="start kiln serve with KILN_SIGNING_KEY set (create one with: kiln keys generate PATH)",
        )
    record, _ = promote(catalog, ref, channel, load_policy(policy_path(store)), key=settings.signing_key,
                        who=who, store=store)  # fmt: skip
    _tag_channel(catalog, record.image, channel, settings)
    return record
