"""End-to-end fixtures: the example recipe built once per session with the real CLI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import KILN, REPO, KilnRun, kiln  # noqa: F401 (e2e tests import the runner from here)


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of examples/ (tests edit components in it)."""
    dest = tmp_path_factory.mktemp("examples") / "examples"
    shutil.copytree(REPO / "examples", dest)
    return dest


@pytest.fixture(scope="session")
def web_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data dir whose layer cache starts empty (so components really run) while parents, .debs and
    apt lists come from the shared test cache."""
    home = tmp_path_factory.mktemp("web-home")
    cache = fresh_layer_cache(home)
    old = os.environ["KILN_CACHE_DIR"]
    os.environ["KILN_CACHE_DIR"] = str(cache)
    yield home
    os.environ["KILN_CACHE_DIR"] = old


def fresh_layer_cache(home: Path) -> Path:
    """A cache under ``home`` (for KILN_CACHE_DIR) sharing only parents, .debs and apt lists with the
    test cache."""
    cache = home / "cache"
    cache.mkdir()
    shared = Path(os.environ["KILN_CACHE_DIR"])
    for sub in ("parents", "debs", "apt"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(shared / sub)
    return cache


@pytest.fixture(scope="session")
def web_build(examples: Path, web_home: Path) -> Iterator[dict[str, Any]]:
    """The example debian-web recipe, built once with a cold layer cache."""
    result = kiln("build", str(examples / "recipes/debian-web.yaml"), "--json", home=web_home)
    yield result.json()


MARK_COMPONENT = """\
name: mark
description: Write /etc/kiln-chain/NAME (which image of a chain wrote what).
schemaVersion: 1.0
parameters:
  - Name: {type: string}
  - Text: {type: string}
phases:
  - name: build
    steps:
      - name: WriteMark
        action: CreateFile
        inputs:
          - path: /etc/kiln-chain/{{ Name }}
            content: "{{ Text }}"
            permissions: "0644"
"""


@dataclass
class ImageLab:
    """A data dir (own layer cache, shared parents) where tests build small chains of images."""

    home: Path
    folder: Path
    env: dict[str, str]

    def kiln(self, *args: str, check: bool = True) -> KilnRun:
        return kiln(*args, home=self.home, env=self.env, check=check)

    def build(
        self, name: str, version: str, parent: str, text: str = "one", extra: str = ""
    ) -> dict[str, Any]:
        """Build ``name@version`` on ``parent`` with one component writing /etc/kiln-chain/NAME."""
        recipe = self.folder / f"{name}-{version}.yaml"
        recipe.write_text(
            f"name: {name}\nversion: {version}\nparent:\n  {parent}\ncomponents:\n"
            f"  - path: mark.yaml\n    parameters: {{Name: {name}, Text: {text}}}\n{extra}"
        )
        built: dict[str, Any] = self.kiln("build", str(recipe), "--json").json()
        return built


@pytest.fixture(scope="session")
def image_lab(tmp_path_factory: pytest.TempPathFactory) -> ImageLab:
    home = tmp_path_factory.mktemp("image-lab")
    folder = home / "recipes"
    folder.mkdir()
    (folder / "mark.yaml").write_text(MARK_COMPONENT)
    return ImageLab(home, folder, {"KILN_CACHE_DIR": str(fresh_layer_cache(home))})
