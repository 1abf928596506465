"""A child image's SBOMs name its parent image as an ancestor (CycloneDX pedigree, SPDX DESCENDANT_OF);
both documents still pass their validators."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from kiln.evidence.installed import Inventory, read_os_release
from kiln.evidence.sbom import ParentIdentity, cyclonedx_json, spdx_json
from tests.evidence.conftest import IMAGE

PARENT_DIGEST = "sha256:" + "cd" * 32
CHILD = dataclasses.replace(IMAGE, parent=ParentIdentity.from_ref("kiln:org-base@1.2.0/3", PARENT_DIGEST))


def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "etc").mkdir(parents=True)
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n')
    return Inventory(os=read_os_release(tmp_path), debs=())


def test_cyclonedx_lists_the_parent_as_ancestor(tmp_path: Path) -> None:
    data = cyclonedx_json(inventory(tmp_path), CHILD)
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode()) is None
    [ancestor] = json.loads(data)["metadata"]["component"]["pedigree"]["ancestors"]
    assert ancestor == {
        "bom-ref": f"image:{PARENT_DIGEST}", "type": "container", "name": "org-base", "version": "1.2.0/3",
        "purl": f"pkg:oci/org-base@{PARENT_DIGEST}",
        "hashes": [{"alg": "SHA-256", "content": "cd" * 32}],
    }  # fmt: skip
    assert (
        "pedigree"
        not in json.loads(cyclonedx_json(inventory(tmp_path / "plain"), IMAGE))["metadata"]["component"]
    )


def test_spdx_relates_the_image_to_its_parent(tmp_path: Path) -> None:
    data = spdx_json(inventory(tmp_path), CHILD)
    path = tmp_path / "sbom.spdx.json"
    path.write_bytes(data)
    assert validate_full_spdx_document(parse_file(str(path))) == []
    doc = json.loads(data)
    parent = next(p for p in doc["packages"] if p["name"] == "org-base")
    assert parent["versionInfo"] == "1.2.0/3" and parent["primaryPackagePurpose"] == "CONTAINER"
    assert parent["checksums"] == [{"algorithm": "SHA256", "checksumValue": "cd" * 32}]
    image_id = next(p["SPDXID"] for p in doc["packages"] if p["name"] == IMAGE.name)
    assert {"spdxElementId": image_id, "relationshipType": "DESCENDANT_OF",
            "relatedSpdxElement": parent["SPDXID"]} in doc["relationships"]  # fmt: skip
