"""What would fail at a build's end fails before it starts: a signing key that is missing or unusable,
a vulnerability gate over an empty database. ``KILN_SIGNING_KEY`` overrides the recipe's key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kiln.build import run_build
from kiln.build.preflight import signing_key
from kiln.catalog import Catalog
from kiln.errors import BuildFailed, KilnError
from kiln.evidence.signing import SigningKeyError, generate_key
from kiln.models import BuildRequest, RecipeSource
from kiln.monitor import ListMonitor
from kiln.recipes.loader import load_recipe
from kiln.settings import Settings
from kiln.store import Store
from tests.documents import create_file_component

RECIPE = """\
name: gated
version: 1.0.0
parent: debian:bookworm
components:
  - path: motd.yaml
{extra}
"""
COMPONENT = create_file_component("hi")


def recipe(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "motd.yaml").write_text(COMPONENT)
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(extra=extra))
    return path


def refused(path: Path, home: Path, settings: Settings) -> KilnError:
    request = BuildRequest(recipe=RecipeSource.read(path), data_dir=home)
    started = time.monotonic()
    with pytest.raises(KilnError) as caught:
        run_build(request, monitor=ListMonitor(), settings=settings)
    assert time.monotonic() - started < 5, "refused before the parent is bootstrapped"
    with Catalog.open(Store.open(home, settings).database_url) as catalog:
        assert catalog.list_builds(10) == [], "nothing started, nothing recorded"
    return caught.value


def test_missing_signing_key_is_found_before_the_build(tmp_path: Path) -> None:
    path = recipe(tmp_path, "signing: {key: keys/missing.key}")
    error = refused(path, tmp_path / "home", Settings())
    assert isinstance(error, SigningKeyError)
    assert f"{path}: signing.key" in error.message and "keys/missing.key" in error.message
    assert "kiln keys generate" in (error.hint or "")


def test_kiln_signing_key_overrides_the_recipe(tmp_path: Path) -> None:
    path = recipe(tmp_path, "signing: {key: keys/missing.key}")
    pair = generate_key(tmp_path / "ci.key")
    loaded = load_recipe(path)
    assert signing_key(loaded, Settings(signing_key=pair.private)) == pair.private
    assert signing_key(loaded, Settings()) == tmp_path / "keys/missing.key"
    (tmp_path / "bad.key").write_text("not a key")
    (tmp_path / "bad.key").chmod(0o600)
    error = refused(path, tmp_path / "home", Settings(signing_key=tmp_path / "bad.key"))
    assert error.message.startswith("KILN_SIGNING_KEY: ") and "not an unencrypted PEM" in error.message


def test_scan_gate_with_an_empty_database_is_refused(tmp_path: Path) -> None:
    path = recipe(tmp_path, "scan: {fail_on: high}")
    error = refused(path, tmp_path / "home", Settings())
    assert isinstance(error, BuildFailed)
    assert "scan.fail_on" in error.message and "vulnerability database" in error.message
    assert "kiln vulndb import" in (error.hint or "")


def test_a_version_rebuilt_from_another_recipe_warns_and_strict_refuses(tmp_path: Path) -> None:
    from kiln.build.orchestrate import version_warnings
    from kiln.errors import ValidationFailed
    from kiln.models import BuildOptions
    from tests.catalog.conftest import new_image

    path = recipe(tmp_path, "")
    loaded = load_recipe(path)
    home = tmp_path / "home"
    with Catalog.open(Store.open(home).database_url) as catalog:
        assert version_warnings(loaded, catalog) == []
        build = catalog.start_build(recipe_name="gated", recipe_version="1.0.0", recipe_path=str(path),
                                    log_path=str(tmp_path / "log"))  # fmt: skip
        catalog.finish_build(build, new_image("gated", "1.0.0", recipe_digest=loaded.digest))
        assert version_warnings(loaded, catalog) == []  # the same recipe again: fine
        path.write_text(path.read_text() + "description: changed\n")
        (warning,) = version_warnings(load_recipe(path), catalog)
    assert "gated@1.0.0 was built before from a recipe with other content (gated@1.0.0/1)" in str(warning)
    request = BuildRequest(recipe=RecipeSource.read(path), data_dir=home, options=BuildOptions(strict=True))
    with pytest.raises(ValidationFailed, match="raise the version"):
        run_build(request, monitor=ListMonitor(), settings=Settings())
    with Catalog.open(Store.open(home).database_url) as catalog:
        assert len(catalog.list_builds(10)) == 1, "refused before a build was started"
