"""Images built on images, for real: debian-base (Debian) → org-base (kiln:debian-base@1.x) → web
(kiln:org-base@1.x) as OCI images, a registry and a layout parent, and a VM disk child of a VM
parent. Layers are reused byte for byte, the parent is named by digest everywhere, a new parent
version makes the children outdated and rebuilds their layers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kiln.outputs.gpt import read_partitions, root_partition
from kiln.outputs.layout import open_layout
from tests.distribute.servers import registry
from tests.e2e.conftest import ImageLab

pytestmark = pytest.mark.e2e

DEBIAN = "image: debian:bookworm\n  packages: [ca-certificates]"  # the example recipe's cached parent
VM_PACKAGES = "[initramfs-tools, linux-image-amd64, systemd-sysv, udev, zstd]"  # the example VM's


def artifact(built: dict[str, Any], kind: str) -> Path:
    return Path(next(a["path"] for a in built["image"]["artifacts"] if a["kind"] == kind))


def evidence(built: dict[str, Any], kind: str) -> Any:
    return json.loads(
        Path(next(e["path"] for e in built["image"]["evidence"] if e["kind"] == kind)).read_text()
    )


def layers(built: dict[str, Any]) -> list[str]:
    return [d.digest for d in open_layout(artifact(built, "oci")).layers]


def inodes(built: dict[str, Any]) -> dict[str, int]:
    blobs = artifact(built, "oci") / "blobs/sha256"
    return {f"sha256:{p.name}": p.stat().st_ino for p in blobs.iterdir()}


def ref(built: dict[str, Any]) -> str:
    return f"{built['image']['name']}@{built['image']['version']}/{built['image']['build']}"


def test_three_level_chain_reuses_layers_and_tracks_outdated_children(
    image_lab: ImageLab, tmp_path: Path
) -> None:
    lab = image_lab
    base = lab.build("debian-base", "1.0.0", DEBIAN)
    org = lab.build("org-base", "1.0.0", "image: kiln:debian-base@1.x")
    web = lab.build("web", "1.0.0", "image: kiln:org-base@1.x")
    base_digest, org_digest = base["image"]["digest"], org["image"]["digest"]

    # The child's image starts with its parent's layers, hard-linked: no byte copied or re-packed.
    assert layers(org)[:-1] == layers(base) and layers(web)[:-1] == layers(org)
    for blob in layers(base):
        assert inodes(web)[blob] == inodes(org)[blob] == inodes(base)[blob]
    assert web["cached_layers"] == 3  # the parent's layers

    # The parent by digest: catalog, lock file, provenance, SBOMs.
    assert (web["image"]["parent"], web["image"]["parent_digest"]) == ("kiln:org-base@1.x", org_digest)
    lock = json.loads(artifact(web, "lock").read_text())["parent"]
    assert (lock["digest"], lock["ref"], lock["image"]) == (
        org_digest,
        "org-base@1.0.0/1",
        "kiln:org-base@1.x",
    )
    deps = evidence(web, "provenance")["predicate"]["buildDefinition"]["resolvedDependencies"]
    parent_dep = next(d for d in deps if d["name"] == "parent")
    assert parent_dep["digest"] == {"sha256": org_digest.removeprefix("sha256:")}
    assert parent_dep["annotations"]["image"] == "kiln:org-base@1.0.0/1"
    [ancestor] = evidence(web, "sbom-cyclonedx")["metadata"]["component"]["pedigree"]["ancestors"]
    assert (ancestor["name"], ancestor["version"], ancestor["bom-ref"]) == (
        "org-base",
        "1.0.0/1",
        f"image:{org_digest}",
    )
    spdx = evidence(web, "sbom-spdx")
    assert any(r["relationshipType"] == "DESCENDANT_OF" for r in spdx["relationships"])
    assert lab.kiln("verify", "web").returncode == 0

    # Lineage: from the Debian root (release, archive date) down; as JSON, dot and a tree.
    graph = lab.kiln("images", "lineage", "org-base", "--json").json()
    assert {(e["parent"], e["child"]) for e in graph["edges"]} == {
        ("debian:bookworm", "debian-base@1.0.0/1"), ("debian-base@1.0.0/1", "org-base@1.0.0/1"),
        ("org-base@1.0.0/1", "web@1.0.0/1"),
    }  # fmt: skip
    root = next(n for n in graph["nodes"] if n["kind"] == "root")
    assert root["release"] == "bookworm" and root["archive_date"] and root["mirror"]
    assert (
        '"org-base@1.0.0/1" -> "web@1.0.0/1";'
        in lab.kiln("images", "lineage", "web", "--format", "dot").stdout
    )
    tree = lab.kiln("images", "lineage", "web").stdout
    assert tree.index("debian:bookworm") < tree.index("debian-base@1.0.0/1") < tree.index("web@1.0.0/1")

    # A new org-base: debian-base's layers byte for byte (same files), one new layer of its own.
    org2 = lab.build("org-base", "1.0.1", "image: kiln:debian-base@1.x", text="two")
    new_blobs = set(inodes(org2)) - set(inodes(base))
    assert layers(org2)[:-1] == layers(base) and new_blobs == set(inodes(org2)) - set(layers(base))
    assert len(new_blobs) == 3  # its component's layer, config and manifest
    assert all(inodes(org2)[b] == inodes(base)[b] for b in layers(base))
    outdated = lab.kiln("images", "list", "--outdated", "--json").json()
    assert [(o["image"], o["reason"]) for o in outdated] == [
        ("web@1.0.0/1", "parent kiln:org-base@1.x has 1.0.1/1, built from 1.0.0/1")
    ]

    # A changed debian-base: every descendant built on the old one is outdated.
    lab.build("debian-base", "1.0.1", DEBIAN, text="two")
    outdated = {o["image"]: o for o in lab.kiln("images", "list", "--outdated", "--json").json()}
    assert sorted(outdated) == ["org-base@1.0.0/1", "org-base@1.0.1/1", "web@1.0.0/1"]
    assert (
        outdated["org-base@1.0.1/1"]["reason"]
        == "parent kiln:debian-base@1.x has 1.0.1/1, built from 1.0.0/1"
    )
    shown = lab.kiln("images", "show", "org-base@1.0.1/1", "--json").json()
    assert shown["outdated"]["newer"] == "debian-base@1.0.1/1"
    assert "outdated" in lab.kiln("images", "show", "org-base@1.0.1/1").stdout

    # Rebuilt on the new parent, the same component's layer is made again (keys chain from the parent).
    org3 = lab.build("org-base", "1.0.2", "image: kiln:debian-base@1.x", text="two")
    assert org3["image"]["parent_digest"] != base_digest
    assert org3["cached_layers"] == len(layers(org3)) - 1  # the parent's layers only
    assert "org-base@1.0.2/1" not in {
        o["image"] for o in lab.kiln("images", "list", "--outdated", "--json").json()
    }

    # Parents from outside the catalog: an OCI layout, and a registry image pinned by digest.
    layout_child = lab.build("from-layout", "1.0.0", f"image: oci-layout:{artifact(org2, 'oci')}:1.0.1")
    assert layout_child["image"]["parent_digest"] == org2["image"]["digest"]
    assert layers(layout_child)[:-1] == layers(org2)
    with registry(tmp_path / "registry") as host:
        subprocess.run(["skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false",
                        f"oci:{artifact(org2, 'oci')}:1.0.1", f"docker://{host}/org-base:1.0.1"],
                       check=True, capture_output=True)  # fmt: skip
        pulled = lab.build("from-registry", "1.0.0",
                           f"image: docker://{host}/org-base:1.0.1@{org2['image']['digest']}")  # fmt: skip
        # Pushed beside its parent, the child uploads only its own layer (and its config).
        log = tmp_path / "registry/registry.log"
        seen = len(log.read_text())
        subprocess.run(["skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false",
                               f"oci:{artifact(pulled, 'oci')}", f"docker://{host}/org-base:child"],
                       check=True, capture_output=True, text=True)  # fmt: skip
        uploads = log.read_text()[seen:].count("POST /v2/org-base/blobs/uploads/")
    assert pulled["image"]["parent_digest"] == org2["image"]["digest"]
    assert uploads == 2, log.read_text()[-3000:]
    assert layers(pulled)[:-1] == layers(org2)


def test_vm_disk_child_of_a_vm_parent(image_lab: ImageLab) -> None:
    disk = "outputs:\n  - {type: raw, boot: uefi, hostname: %s}\n"
    lab = image_lab
    lab.build(
        "vm-base", "1.0.0", f"image: debian:bookworm\n  packages: {VM_PACKAGES}", extra=disk % "vm-base"
    )
    app = lab.build("vm-app", "1.0.0", "image: kiln:vm-base@1.x", extra=disk % "vm-app")
    raw = artifact(app, "raw")
    root = root_partition(read_partitions(raw))
    fs = f"{raw}?offset={root.start}"

    def cat(path: str) -> str:
        return subprocess.run(["debugfs", "-R", f"cat {path}", fs], check=True, capture_output=True,
                              text=True).stdout  # fmt: skip

    # The child's disk holds the parent's tree (kernel, its mark) with the child's layer on top.
    assert cat("/etc/kiln-chain/vm-base") == "one" and cat("/etc/kiln-chain/vm-app") == "one"
    assert cat("/etc/hostname") == "vm-app\n"
    modules = subprocess.run(["debugfs", "-R", "ls -l /usr/lib/modules", fs], check=True, capture_output=True,
                             text=True).stdout  # fmt: skip
    assert "-amd64" in modules
    esp = read_partitions(raw)[0]
    listing = subprocess.run(
        ["mdir", "-/", "-b", "-i", f"{raw}@@{esp.start}", "::/"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    ).stdout
    assert "::/EFI/BOOT/BOOTX64.EFI" in listing and "/linux" in listing
