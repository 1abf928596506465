"""Retire and enforcement on real images (real CLI builds from the shared parent cache, signed
provenance): a retired image's artifacts are gone, what other images share stays, its SBOMs and
provenance remain and ``kiln verify`` checks them; disabled images are refused by distribution,
tests and promotion, and disabling or retiring a distributed image unpublishes it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kiln.errors import KilnError
from kiln.evidence.signing import generate_key
from kiln.store import Store
from kiln.verify.instance import image_root
from tests.cli_runner import kiln
from tests.documents import create_file_component, write_recipe

pytestmark = pytest.mark.e2e

COMPONENT = create_file_component("lifecycle\n", overwrite=True)
SIGNED = "signing: {key: signing.key}\n"


@dataclass(frozen=True)
class Two:
    home: Path
    key: Path
    old: dict[str, Any]
    new: dict[str, Any]

    @staticmethod
    def ref(image: dict[str, Any]) -> str:
        return f"{image['name']}@{image['version']}/{image['build']}"


@pytest.fixture
def two(tmp_path: Path, _shared_cache: None) -> Two:
    """Two versions of one recipe: every layer is shared, only their configs and manifests differ."""
    pair = generate_key(tmp_path / "signing.key")
    home = tmp_path / "home"
    images = []
    for version in ("1.0.0", "1.0.1"):
        recipe = write_recipe(tmp_path, "tiny-life", "motd.yaml", COMPONENT, version=version, extra=SIGNED)
        images.append(kiln("build", str(recipe), "--json", home=home).json()["image"])
    return Two(home, pair.public, images[0], images[1])


def _layout(image: dict[str, Any]) -> Path:
    return Path(next(a["path"] for a in image["artifacts"] if a["kind"] == "oci"))


def test_retired_image_keeps_evidence_and_verifies(two: Two, tmp_path: Path) -> None:
    old, new = Two.ref(two.old), Two.ref(two.new)
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"distribution:\n  - {{name: shelf, type: directory, path: {tmp_path / 'out'}}}\n")
    kiln("distribute", old, "--config", str(targets), home=two.home)
    shelf = tmp_path / "out" / "tiny-life" / f"1.0.0-{two.old['build']}"
    assert (shelf / "manifest.json").is_file()
    kiln("promote", old, "--to", "dev", "--key", str(two.key.with_suffix("")), home=two.home)
    old_blobs = {p.name for p in (_layout(two.old) / "blobs/sha256").iterdir()}
    new_blobs = {p.name for p in (_layout(two.new) / "blobs/sha256").iterdir()}
    shared = old_blobs & new_blobs
    assert shared and old_blobs - new_blobs  # layers shared; config and manifest its own

    done = kiln("images", "retire", old, "--reason", "superseded by 1.0.1", "--yes", "--json",
                "--config", str(targets), home=two.home)  # fmt: skip
    assert f"warning: {old} is the current version of channel dev" in done.stderr
    report = json.loads(done.stdout)
    assert report["unpublished"] == [{"target": "shelf", "result": "unpublished", "orphans": []}]
    assert not shelf.exists()  # retiring took it off its distribution target
    assert (report["from_state"], report["to_state"]) == ("active", "retired")
    assert str(_layout(two.old)) in [r["path"] for r in report["retire"]["removed"]]
    assert report["retire"]["freed"] > 0

    assert not _layout(two.old).exists()  # the retired image's blobs are gone
    assert {p.name for p in (_layout(two.new) / "blobs/sha256").iterdir()} == new_blobs  # shared ones stay
    evidence = {e["kind"]: Path(e["path"]) for e in two.old["evidence"]}
    assert {"sbom-spdx", "sbom-cyclonedx", "provenance-signed"} <= set(evidence)
    assert all(path.is_file() for path in evidence.values())  # SBOMs, provenance remain

    shown = json.loads(kiln("images", "show", old, "--json", home=two.home).stdout)
    assert shown["state"] == "retired" and shown["digest"] == two.old["digest"]
    kiln("sbom", old, "--format", "spdx", home=two.home)
    doc = two.home.parent / "doc.yaml"
    doc.write_text(COMPONENT)
    instance = kiln("toe", "run", "--documents", str(doc), "--target", f"image:{old}", code=1, home=two.home)
    assert (
        "is retired: retired images are not used for new instances (their artifacts are deleted)"
        in " ".join(instance.stderr.split())
    )
    # what reads the root (kiln scan, comply, sbom of an unrecorded kind) says why there is none
    with (
        pytest.raises(KilnError, match="is retired: its artifacts are deleted, there is no root to read"),
        image_root(Store.open(two.home), old),
    ):
        pass

    verified = kiln("verify", old, "--key", str(two.key), home=two.home)
    assert "retired: artifacts deleted" in verified.stdout
    assert "signature: valid ed25519 signature" in verified.stdout
    kiln("verify", new, "--key", str(two.key), home=two.home)  # the other intact

    # what remains is really checked: an altered SBOM of the retired image fails verification
    evidence["sbom-spdx"].write_text("{}")
    broken = kiln("verify", old, "--key", str(two.key), code=1, home=two.home)
    assert "sbom-spdx" in broken.stderr and "Traceback" not in broken.stderr

    again = kiln("images", "activate", old, "--reason", "undo", code=1, home=two.home)
    assert "retired is final" in again.stderr


def test_disabled_image_is_refused_and_unpublished(two: Two, tmp_path: Path) -> None:
    ref = Two.ref(two.old)
    out = tmp_path / "out"
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"distribution:\n  - {{name: shelf, type: directory, path: {out}}}\n")
    kiln("distribute", ref, "--config", str(targets), home=two.home)
    shelf = out / "tiny-life" / f"1.0.0-{two.old['build']}"
    assert (shelf / "manifest.json").is_file()

    done = kiln("images", "disable", ref, "--reason", "CVE-2026-0001", "--config", str(targets), "--json",
                home=two.home)  # fmt: skip
    assert json.loads(done.stdout)["unpublished"] == [
        {"target": "shelf", "result": "unpublished", "orphans": []}
    ]
    assert not shelf.exists()
    history = json.loads(kiln("images", "history", ref, "--json", home=two.home).stdout)
    assert history["changes"][-1]["details"]["unpublished"][0]["result"] == "unpublished"

    doc = tmp_path / "doc.yaml"
    doc.write_text(COMPONENT)
    for argv, words in (
        (["distribute", ref, "--config", str(targets)], "is disabled: disabled images are not distributed"),
        (
            ["toe", "run", "--documents", str(doc), "--target", f"image:{ref}"],
            "is disabled: disabled images are not used for new instances",
        ),
        (["test", ref], "is disabled: disabled images are not tested on a new instance"),
        (
            ["promote", ref, "--to", "dev", "--key", str(two.key.with_suffix(""))],
            "is disabled: disabled images are not promoted",
        ),
    ):
        refused = kiln(*argv, code=1, home=two.home)
        assert words in " ".join(refused.stderr.split()), refused.stderr
        assert "Traceback" not in refused.stderr
    assert not shelf.exists()

    kiln("images", "activate", ref, "--reason", "fixed", home=two.home)
    kiln("distribute", ref, "--config", str(targets), home=two.home)
    assert (shelf / "manifest.json").is_file()
