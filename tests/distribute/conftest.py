"""One small real image (real CLI build from the shared parent cache, signed provenance, SBOMs),
built once per session; tests publish it with distinct target names so their histories stay apart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiln.evidence.signing import generate_key
from tests.cli_runner import kiln
from tests.documents import create_file_component, write_recipe

COMPONENT = create_file_component("distributed\n", overwrite=True, check="grep -qx distributed /etc/motd")


@dataclass(frozen=True)
class Built:
    home: Path
    work: Path
    key: Path
    image: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.image['name']}@{self.image['version']}/{self.image['build']}"


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_own(tmp_path_factory.mktemp("distribute"), "tiny-dist")


def build_own(work: Path, name: str) -> Built:
    """A build of its own (own data dir, recipe ``name``) for a test that changes the image's state."""
    recipe = write_recipe(
        work, name, "motd.yaml", COMPONENT, version="1.2.3", extra="signing: {key: signing.key}\n"
    )
    pair = generate_key(work / "signing.key")
    result = kiln("build", str(recipe), "--json", home=work / "home")
    return Built(work / "home", work, pair.private, result.json()["image"])


def write_targets(path: Path, body: str) -> Path:
    path.write_text("distribution:\n" + body)
    return path
