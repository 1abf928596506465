"""SBOMs from a real Debian 12 root, validated by spdx-tools' and cyclonedx-python-lib's validators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from kiln.evidence.installed import Inventory, read_inventory
from kiln.evidence.licences import copyright_licences, debian_to_spdx
from kiln.evidence.sbom import cyclonedx_json, spdx_json
from kiln.sandbox.run import run
from tests.evidence.conftest import IMAGE


@pytest.fixture(scope="module")
def inventory(image_root: Path) -> Inventory:
    return read_inventory(image_root)


def test_inventory_matches_dpkg_query(image_root: Path, inventory: Inventory) -> None:
    out = run(
        [
            "dpkg-query",
            f"--admindir={image_root}/var/lib/dpkg",
            "-W",
            "-f",
            "${Package} ${Version} ${source:Package} ${source:Version}\n",
        ]
    ).stdout
    expected = sorted(tuple(line.split()) for line in out.splitlines())
    got = sorted((d.name, d.version, d.source, d.source_version) for d in inventory.debs)
    assert got == expected
    assert inventory.os.codename == "bookworm" and inventory.os.version_id == "12"
    assert [(d.name, d.version, d.licence) for d in inventory.python] == [
        ("Sample_Tool", "1.4.2", "Apache-2.0")
    ]


def test_licences_from_machine_readable_copyright(inventory: Inventory) -> None:
    by_name = {d.name: d for d in inventory.debs}
    assert "GPL-3.0-or-later" in by_name["bash"].licences
    assert by_name["libc6"].licence  # glibc's copyright is not machine-readable → NOASSERTION or text
    no_file = [d for d in inventory.debs if not d.licences]
    assert all(d.licence == "NOASSERTION" for d in no_file)


@pytest.mark.parametrize(
    ("debian", "spdx"),
    [
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-1+ or Artistic", "GPL-1.0-or-later OR Artistic-1.0-Perl"),
        ("LGPL-2.1", "LGPL-2.1-only"),
        ("Expat", "MIT"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("public-domain", "LicenseRef-public-domain"),
        ("GPL-3+ with Bison exception", "LicenseRef-GPL-3-with-Bison-exception"),
        ("", "NOASSERTION"),
    ],
)
def test_debian_licence_names(debian: str, spdx: str) -> None:
    assert debian_to_spdx(debian) == spdx


def test_spdx_validates_and_is_deterministic(inventory: Inventory, tmp_path: Path) -> None:
    data = spdx_json(inventory, IMAGE)
    assert data == spdx_json(read_inventory_again(inventory), IMAGE)
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(data)
    assert validate_full_spdx_document(parse_file(str(path))) == []
    doc = json.loads(data)
    assert doc["spdxVersion"] == "SPDX-2.3"
    assert doc["documentNamespace"].endswith("ab" * 32)
    assert doc["creationInfo"]["created"] == "2026-11-23T12:00:00Z"
    rels = {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]
    }
    image_id = next(p["SPDXID"] for p in doc["packages"] if p.get("primaryPackagePurpose") == "CONTAINER")
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", image_id) in rels
    bash = next(p for p in doc["packages"] if p["name"] == "bash")
    assert (image_id, "CONTAINS", bash["SPDXID"]) in rels
    assert bash["comment"].startswith("architecture amd64, installed size ") and bash["supplier"].startswith(
        "Person:"
    )
    assert bash["sourceInfo"].startswith("built from source package bash ")
    purl = bash["externalRefs"][0]["referenceLocator"]
    assert (
        purl
        == f"pkg:deb/debian/bash@{bash['versionInfo'].replace('+', '%2B')}?arch=amd64&distro=debian-12"
        + ("&upstream=bash%405.2.15-2" if "+b" in bash["versionInfo"] else "")
    )
    assert len(doc["packages"]) == len(inventory.debs) + len(inventory.python) + 1


def test_cyclonedx_validates_and_is_deterministic(inventory: Inventory) -> None:
    data = cyclonedx_json(inventory, IMAGE)
    assert data == cyclonedx_json(inventory, IMAGE)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None
    bom = json.loads(data)
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["timestamp"].startswith("2026-11-23T12:00:00")
    assert bom["metadata"]["component"]["type"] == "container"
    purls = {c["purl"] for c in bom["components"]}
    assert any(p.startswith("pkg:deb/debian/mount@") and "upstream=util-linux" in p for p in purls)
    assert "pkg:pypi/sample-tool@1.4.2" in purls
    root_dep = next(d for d in bom["dependencies"] if d["ref"] == bom["metadata"]["component"]["bom-ref"])
    assert len(root_dep["dependsOn"]) == len(bom["components"])


def test_sbom_changes_with_the_image(inventory: Inventory) -> None:
    other = IMAGE.__class__(IMAGE.name, IMAGE.version, "sha256:" + "cd" * 32, IMAGE.created)
    assert spdx_json(inventory, other) != spdx_json(inventory, IMAGE)
    assert cyclonedx_json(inventory, other) != cyclonedx_json(inventory, IMAGE)


def read_inventory_again(inv: Inventory) -> Inventory:
    """A second, independently built inventory object with equal content."""
    return Inventory(inv.os, tuple(inv.debs), tuple(inv.python))


COPYRIGHT_FILES = {
    "current": (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 A\nLicense: GPL-2+\n This program is free software.\n\n"
        "Files: lib/*\nCopyright: 2021 B\nLicense: Expat\n\nLicense: GPL-2+\n Full text.\n",
        ["GPL-2.0-or-later", "MIT"],
    ),
    "dep5-draft": (
        "Format: http://dep.debian.net/deps/dep5\n\nFiles: *\nLicense: BSD-3-clause\n",
        ["BSD-3-Clause"],
    ),
    "free-text": ("This package was debianized by someone.\nIt is GPL.\n", []),
    "no-files-licence": (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\n",
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(COPYRIGHT_FILES))
def test_copyright_file_kinds(name: str, tmp_path: Path) -> None:
    text, expected = COPYRIGHT_FILES[name]
    (tmp_path / "usr/share/doc/pkg").mkdir(parents=True)
    (tmp_path / "usr/share/doc/pkg/copyright").write_text(text)
    assert copyright_licences(tmp_path, "pkg") == expected
    assert copyright_licences(tmp_path, "absent") == []
