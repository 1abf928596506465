"""S3 destination against moto's server mode on 127.0.0.1 (a real HTTP S3 endpoint)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.distribute.conftest import Built, kiln, write_targets
from tests.distribute.servers import free_port, moto

pytestmark = pytest.mark.e2e

SECRET = "moto-secret-9d41c2e7"
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAKILNTEST",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto(tmp_path_factory.mktemp("moto")) as url:
        yield url


def s3_client(endpoint: str) -> object:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIAKILNTEST", aws_secret_access_key=SECRET)  # fmt: skip


def targets(path: Path, endpoint: str, bucket: str, name: str = "bucket") -> Path:
    return write_targets(
        path,
        f"  - name: {name}\n    type: s3\n    bucket: {bucket}\n    endpoint_url: {endpoint}\n"
        "    multipart_threshold: 8M\n    part_size: 5M\n    tags: {team: platform}\n",
    )


def test_upload_with_checksums_multipart_metadata_and_manifest(
    built: Built, endpoint: str, tmp_path: Path
) -> None:
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="images")  # type: ignore[attr-defined]
    config = targets(tmp_path / "t.yaml", endpoint, "images")
    result = kiln("distribute", built.ref, "--config", str(config), "--json", home=built.home, env=AWS)
    (outcome,) = json.loads(result.stdout)["targets"]
    prefix = f"tiny-dist/1.2.3-{built.image['build']}"
    assert outcome["external"]["manifest"] == f"s3://images/{prefix}/manifest.json"

    manifest = json.loads(s3.get_object(Bucket="images", Key=f"{prefix}/manifest.json")["Body"].read())  # type: ignore[attr-defined]
    assert manifest["image"]["digest"] == built.image["digest"]
    sums = s3.get_object(Bucket="images", Key=f"{prefix}/SHA256SUMS")["Body"].read().decode()  # type: ignore[attr-defined]
    largest = max(outcome["external"]["objects"], key=lambda o: o["size"])
    assert largest["size"] > 8 << 20  # the layer blob went up in parts
    for line in sums.splitlines():
        digest, name = line.split("  ", 1)
        key = f"{prefix}/{name}"
        head = s3.head_object(Bucket="images", Key=key, ChecksumMode="ENABLED")  # type: ignore[attr-defined]
        assert (
            head["Metadata"]["sha256"] == digest and head["Metadata"]["kiln-digest"] == built.image["digest"]
        )
        if key == largest["key"]:
            body = s3.get_object(Bucket="images", Key=key)["Body"].read()  # type: ignore[attr-defined]
            assert hashlib.sha256(body).hexdigest() == digest
            assert head["ETag"].strip('"').endswith(f"-{-(-largest['size'] // (5 << 20))}")  # multipart ETag
        elif name == "manifest.json":
            assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(digest)).decode()
    tags = s3.get_object_tagging(Bucket="images", Key=f"{prefix}/manifest.json")["TagSet"]  # type: ignore[attr-defined]
    assert tags == [{"Key": "team", "Value": "platform"}]

    # A changed configuration publishes again, but unchanged objects are not uploaded twice.
    config.write_text(config.read_text().replace("platform", "platform-2"))
    again = kiln("distribute", built.ref, "--config", str(config), "--json", home=built.home, env=AWS)
    assert json.loads(again.stdout)["targets"][0]["external"]["uploaded"] == 0

    kiln("distribute", built.ref, "--config", str(config), "--unpublish", home=built.home, env=AWS)
    assert s3.list_objects_v2(Bucket="images").get("KeyCount") == 0  # type: ignore[attr-defined]
    for file in built.home.rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-credentials", "no AWS credentials for s3"),
        ("unreachable", "cannot reach the endpoint"),
        ("missing-bucket", "bucket nonexistent-bucket does not exist"),
    ],
)
def test_preflight_fails_fast_and_clearly(
    built: Built, endpoint: str, tmp_path: Path, case: str, expected: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}" if case == "unreachable" else endpoint
    config = targets(tmp_path / "t.yaml", url, "nonexistent-bucket", name=f"pre-{case}")
    env = dict(AWS)
    if case == "no-credentials":
        env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
               "AWS_CONFIG_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true", "HOME": str(tmp_path)}  # fmt: skip
    result = kiln("distribute", built.ref, "--config", str(config), code=1, home=built.home, env=env)
    assert "preflight failed, nothing was published" in result.stderr and expected in result.stderr, (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_preflight_before_a_build(endpoint: str, tmp_path: Path) -> None:
    """`kiln preflight RECIPE`: a pipeline checks the targets before spending a build on them."""
    s3_client(endpoint).create_bucket(Bucket="ready")  # type: ignore[attr-defined]
    recipe = tmp_path / "recipe.yaml"
    body = (
        "name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents: [update-os]\ndistribution:\n"
        f"  - {{name: ok, type: s3, bucket: ready, endpoint_url: '{endpoint}'}}\n"
        f"  - {{name: missing, type: s3, bucket: not-there, endpoint_url: '{endpoint}'}}\n"
    )
    recipe.write_text(body)
    result = kiln("preflight", str(recipe), code=1, home=tmp_path / "home", env=AWS)
    assert "preflight failed, do not start the build" in result.stderr
    assert "missing: target missing: bucket not-there does not exist" in result.stderr
    ok = kiln("preflight", str(recipe), "--target", "ok", home=tmp_path / "home", env=AWS)
    assert "preflight passed: ok" in ok.stdout, ok.stderr
