"""Retiring an image published to S3 (moto's server) and an OCI registry (Debian's docker-registry)
removes the remote copies, recorded per target. The image is its own build (in its own data dir) so
the session's shared image stays active for the other distribution tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.distribute.conftest import build_own, kiln, write_targets
from tests.distribute.servers import moto, registry

pytestmark = pytest.mark.e2e

AWS = {"AWS_ACCESS_KEY_ID": "AKIAKILNTEST", "AWS_SECRET_ACCESS_KEY": "moto-retire-51e0",
       "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def _inspect(ref: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{ref}"],
                          capture_output=True, check=False)  # fmt: skip


def test_retire_removes_s3_objects_and_registry_manifests(tmp_path: Path) -> None:
    built = build_own(tmp_path, "tiny-retire")
    home, image, ref = built.home, built.image, built.ref

    with moto(tmp_path / "moto") as endpoint, registry(tmp_path / "registry") as host:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        s3.create_bucket(Bucket="shelf")
        s3.put_object(Bucket="shelf", Key="other/keep.txt", Body=b"not kiln's")
        repo = f"{host}/kiln/retire"
        config = write_targets(
            tmp_path / "targets.yaml",
            f"  - name: bucket\n    type: s3\n    bucket: shelf\n    endpoint_url: {endpoint}\n"
            f"  - name: reg\n    type: oci\n    repositories: [{repo}]\n    tls_verify: false\n"
            "    tags: ['{{ version }}', latest]\n",
        )
        kiln("distribute", ref, "--config", str(config), "--json", home=home, env=AWS)
        prefix = f"tiny-retire/1.2.3-{image['build']}/"
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="shelf", Prefix=prefix).get("Contents", [])]
        assert prefix + "manifest.json" in keys and prefix + "SHA256SUMS" in keys
        assert _inspect(f"{repo}:1.2.3").returncode == 0
        fallback = f"{repo}:{image['digest'].replace(':', '-')}"
        assert _inspect(fallback).returncode == 0  # the referrers fallback index

        retired = kiln("images", "retire", ref, "--reason", "end of life", "--yes", "--json",
                       "--config", str(config), home=home, env=AWS)  # fmt: skip
        assert json.loads(retired.stdout)["unpublished"] == [
            {"target": "bucket", "result": "unpublished", "orphans": []},
            {"target": "reg", "result": "unpublished", "orphans": []},
        ]

        assert s3.list_objects_v2(Bucket="shelf", Prefix=prefix).get("KeyCount") == 0
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="shelf")["Contents"]] == ["other/keep.txt"]
        for gone in (f"{repo}:1.2.3", f"{repo}:latest", f"{repo}@{image['digest']}", fallback):
            inspected = _inspect(gone)
            assert inspected.returncode != 0, gone
            assert b"manifest unknown" in inspected.stderr or b"not found" in inspected.stderr, gone

    history = json.loads(kiln("distributions", ref, "--json", home=home).stdout)
    last = {r["target"]: r for r in history}  # newest attempt per target comes last
    assert {t: (r["kind"], r["status"]) for t, r in last.items()} == {
        "bucket": ("s3", "unpublished"),
        "reg": ("oci", "unpublished"),
    }
