"""AMI destination against moto's server mode on 127.0.0.1.

The image is a real catalog record whose raw disk is a small sparse file (building a bootable disk
takes minutes and moto never boots it). moto implements the EBS direct APIs, RegisterImage, CopyImage,
tags, launch permissions, DeregisterImage and DeleteSnapshot, but ignores RegisterImage's BootMode,
EnaSupport and block device mappings and has no ImportSnapshot: moto's request recorder shows what
Kiln sent, and the import path is shown to fail clearly (see README: what only AWS can prove).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import httpx
import pytest

from kiln.catalog import Catalog, NewImage
from kiln.models import Artifact
from tests.distribute.conftest import kiln, write_targets
from tests.distribute.servers import moto

pytestmark = pytest.mark.e2e

SECRET = "moto-ami-secret-51be0a"
AWS = {"AWS_ACCESS_KEY_ID": "AKIAKILNAMI", "AWS_SECRET_ACCESS_KEY": SECRET}
BLOCK = 512 << 10
ACCOUNT = "111122223333"
ORG = "arn:aws:organizations::123456789012:organization/o-kilntest01"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("moto-ami")
    with moto(root) as url:
        yield url, root


@pytest.fixture(scope="module")
def disk_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, bytes]:
    """A catalogued image (real catalog, real files) with a 3 MiB sparse raw disk, recipe says BIOS."""
    work = tmp_path_factory.mktemp("ami-image")
    disk = work / "disk.raw"
    first, later = os.urandom(BLOCK), os.urandom(1000)
    with open(disk, "wb") as fh:
        fh.write(first)
        fh.seek(4 * BLOCK + 17)
        fh.write(later)
        fh.truncate(6 * BLOCK)
    recipe = work / "recipe.yaml"
    recipe.write_text("name: disky\nversion: 2.0.0\noutputs: [{type: raw, boot: bios}]\n")
    home = work / "home"
    digest = "sha256:" + hashlib.sha256(b"disky").hexdigest()
    with Catalog.open(f"sqlite:///{home}/catalog.db") as catalog:
        build = catalog.start_build(recipe_name="disky", recipe_version="2.0.0", recipe_path=str(recipe),
                                    log_path=str(work / "build.log"))  # fmt: skip
        raw = Artifact(kind="raw", path=str(disk), digest="sha256:" + hashlib.sha256(disk.read_bytes()).hexdigest(),
                       size=disk.stat().st_size)  # fmt: skip
        catalog.finish_build(build, NewImage(name="disky", version="2.0.0", digest=digest,
                                             created=datetime(2026, 12, 1, tzinfo=UTC), parent="debian:bookworm",
                                             artifacts=[raw]))  # fmt: skip
    return home, digest, disk.read_bytes()


def client(endpoint: str, service: str, region: str = "us-east-1") -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="AKIAKILNAMI", aws_secret_access_key=SECRET)  # fmt: skip


def sent(root: Path, action: str) -> dict[str, list[str]]:
    """The form parameters of the EC2 ``action`` request moto recorded."""
    for line in (root / "recording.jsonl").read_text().splitlines():
        entry = json.loads(line)
        raw = base64.b64decode(entry["body"]) if entry["body_encoded"] else (entry["body"] or "").encode()
        body = raw.decode("utf-8", "replace")  # EBS blocks are binary; EC2 calls are form-encoded
        params = parse_qs(body)
        if params.get("Action") == [action]:
            return params
    raise AssertionError(f"no {action} request recorded")


def test_ebs_direct_snapshot_register_tags_permissions_copies_and_retire(
    disk_image: tuple[Path, str, bytes], aws: tuple[str, Path], tmp_path: Path
) -> None:
    home, digest, data = disk_image
    endpoint, root = aws
    config = write_targets(
        tmp_path / "t.yaml",
        f"  - name: ami\n    type: ami\n    endpoint_url: {endpoint}\n    snapshot_method: ebs-direct\n"
        f"    regions: [eu-west-1]\n    tags: {{team: platform}}\n"
        f"    launch_permissions: {{accounts: ['{ACCOUNT}'], organizations: ['{ORG}']}}\n",
    )
    httpx.post(f"{endpoint}/moto-api/recorder/start-recording")
    result = kiln("distribute", "disky", "--config", str(config), "--json", home=home, env=AWS)
    httpx.post(f"{endpoint}/moto-api/recorder/stop-recording")
    external = json.loads(result.stdout)["targets"][0]["external"]
    assert external["boot_mode"] == "legacy-bios"  # from the recipe's `boot: bios`
    register = sent(root, "RegisterImage")
    assert register["BootMode"] == ["legacy-bios"] and register["EnaSupport"] == ["true"]
    assert register["BlockDeviceMapping.1.Ebs.SnapshotId"] == external["snapshots"]["us-east-1"]

    snapshot = external["snapshots"]["us-east-1"][0]
    ebs = client(endpoint, "ebs")
    blocks = ebs.list_snapshot_blocks(SnapshotId=snapshot)["Blocks"]
    assert sorted(b["BlockIndex"] for b in blocks) == [0, 4]  # zero blocks were not sent
    for b in blocks:
        got = ebs.get_snapshot_block(
            SnapshotId=snapshot, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"]
        )
        expected = data[b["BlockIndex"] * BLOCK : (b["BlockIndex"] + 1) * BLOCK]
        assert got["BlockData"].read()[: len(expected)] == expected

    for region in ("us-east-1", "eu-west-1"):
        ec2 = client(endpoint, "ec2", region)
        ami = external["amis"][region]
        (image,) = ec2.describe_images(ImageIds=[ami])["Images"]
        tags = {t["Key"]: t["Value"] for t in image["Tags"]}
        assert tags["kiln:digest"] == digest and tags["team"] == "platform"
        assert image["Name"] == "disky-2.0.0-1"
        perms = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]
        assert {"UserId": ACCOUNT} in perms and {"OrganizationArn": ORG} in perms

    # The catalog's record says done; a second job (new config) finds the AMIs by digest tag.
    config.write_text(config.read_text().replace("platform", "platform-b"))
    again = kiln("distribute", "disky", "--config", str(config), "--json", home=home, env=AWS)
    assert json.loads(again.stdout)["targets"][0]["external"]["amis"] == external["amis"]

    gone = kiln("distribute", "disky", "--config", str(config), "--unpublish", "--json", home=home, env=AWS)
    assert json.loads(gone.stdout)["targets"][0]["result"] == "unpublished", gone.stdout
    for region in ("us-east-1", "eu-west-1"):
        ec2 = client(endpoint, "ec2", region)
        assert not ec2.describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": ["disky-2.0.0-1"]}]
        )["Images"]
    assert snapshot not in {
        s["SnapshotId"] for s in client(endpoint, "ec2").describe_snapshots(OwnerIds=["self"])["Snapshots"]
    }
    for file in home.rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


def test_import_method_preflight_and_the_aws_only_step(
    disk_image: tuple[Path, str, bytes], aws: tuple[str, Path], tmp_path: Path
) -> None:
    home, _, data = disk_image
    endpoint, _ = aws
    client(endpoint, "s3").create_bucket(Bucket="disks")
    config = write_targets(
        tmp_path / "t.yaml",
        f"  - {{name: ami-import, type: ami, endpoint_url: '{endpoint}', bucket: disks, regions: [mars-north-1]}}\n",
    )
    unknown = kiln("distribute", "disky", "--config", str(config), code=1, home=home, env=AWS)
    assert "unknown region(s) mars-north-1" in unknown.stderr

    config.write_text(config.read_text().replace(", regions: [mars-north-1]", ""))
    norole = kiln("distribute", "disky", "--config", str(config), code=1, home=home, env=AWS)
    assert "service role vmimport" in norole.stderr, norole.stderr

    client(endpoint, "iam").create_role(RoleName="vmimport", AssumeRolePolicyDocument="{}")
    result = kiln("distribute", "disky", "--config", str(config), "--json", home=home, env=AWS, check=False)
    (outcome,) = json.loads(result.stdout)["targets"]
    # The disk is uploaded (with its sha256 in the metadata); moto has no ImportSnapshot: only AWS can.
    head = client(endpoint, "s3").head_object(Bucket="disks", Key="disky/2.0.0-1/disk.raw")
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert outcome["result"] == "failed" and outcome["error"]
    history = json.loads(kiln("distributions", "disky", "--json", home=home).stdout)
    assert [r["status"] for r in history if r["target"] == "ami-import"] == ["failed"]
