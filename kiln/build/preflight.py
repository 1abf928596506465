"""Checks made before a build starts, so what would fail at its end fails in its first second: the
signing key exists and is usable, a vulnerability gate has a database to gate on."""

from __future__ import annotations

from pathlib import Path

from kiln.errors import BuildFailed
from kiln.evidence.signing import SigningKeyError, load_private_key
from kiln.evidence.vulndb import VulnDb
from kiln.recipes.loader import LoadedRecipe
from kiln.settings import Settings
from kiln.store import Store


def signing_key(loaded: LoadedRecipe, settings: Settings) -> Path | None:
    """``KILN_SIGNING_KEY`` (the settings') when set: it overrides the recipe's ``signing.key``
    (relative to the recipe file), so CI can sign with its own key without editing recipes."""
    if settings.signing_key is not None:
        return settings.signing_key
    if loaded.recipe.signing is not None:
        return loaded.path.parent / loaded.recipe.signing.key
    return None


def preflight(loaded: LoadedRecipe, store: Store, settings: Settings) -> None:
    """Refuse to start a build that cannot end well (raises a KilnError naming what to fix)."""
    key = signing_key(loaded, settings)
    if key is not None:
        source = "KILN_SIGNING_KEY" if settings.signing_key is not None else f"{loaded.path}: signing.key"
        try:
            load_private_key(key)
        except SigningKeyError as exc:
            hint = exc.hint or "create one with: kiln keys generate PATH"
            raise SigningKeyError(f"{source}: {exc.message}", hint=hint) from None
    gate = loaded.recipe.scan
    if gate is not None and gate.fail_on is not None and not VulnDb.open(store).sources():
        raise BuildFailed(
            f"{loaded.path}: scan.fail_on gates on vulnerabilities, but the vulnerability database of "
            f"{store.home} is empty",
            hint="import a feed first: kiln vulndb import https://security-tracker.debian.org/tracker/data/json",
        )
