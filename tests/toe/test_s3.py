"""S3Download and S3Upload against moto's S3 server on 127.0.0.1 (boto3 with a configured endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kiln.toe.actions import Action, ActionContext, ActionFailed
from kiln.toe.runner import RootfsTarget


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"bucket-{len(client.list_buckets()['Buckets'])}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="pkg/app.tar.gz", Body=b"tarball")
    client.put_object(Bucket=bucket, Key="conf/a.conf", Body=b"a")
    client.put_object(Bucket=bucket, Key="conf/nested/b.conf", Body=b"b")
    client.put_object(Bucket=bucket, Key="conf/", Body=b"")  # a folder marker, skipped
    client.bucket = bucket
    return client


def call(root: Path, endpoint: str, action: str, inputs: Any) -> None:
    ctx = ActionContext(
        target=RootfsTarget(root), document="t", phase="build", step="S", timeout=60, output=lambda _l: None,
        services={"s3": {"endpoint_url": endpoint}},
    )  # fmt: skip
    instance = Action.registry[action]()
    instance.run(ctx, instance.parse(inputs))


def test_download_object_and_prefix(tiny_root: Path, s3: Any, endpoint: str) -> None:
    b = s3.bucket
    call(tiny_root, endpoint, "S3Download", [
        {"source": f"s3://{b}/pkg/app.tar.gz", "destination": "/opt/app.tgz"},
        {"source": f"s3://{b}/pkg/app.tar.gz", "destination": "/opt/pkgs/"},
        {"source": f"s3://{b}/conf/*", "destination": "/etc/app/"},
    ])  # fmt: skip
    assert (tiny_root / "opt/app.tgz").read_bytes() == b"tarball"
    assert (tiny_root / "opt/pkgs/app.tar.gz").read_bytes() == b"tarball"
    assert (tiny_root / "etc/app/a.conf").read_bytes() == b"a"
    assert (tiny_root / "etc/app/nested/b.conf").read_bytes() == b"b"
    with pytest.raises(ActionFailed, match="already exists and overwrite is false"):
        call(tiny_root, endpoint, "S3Download",
             [{"source": f"s3://{b}/pkg/app.tar.gz", "destination": "/opt/app.tgz", "overwrite": False}])  # fmt: skip
    with pytest.raises(ActionFailed, match=r"404|NoSuchKey|Not Found"):
        call(tiny_root, endpoint, "S3Download", [{"source": f"s3://{b}/missing", "destination": "/opt/m"}])
    assert not (tiny_root / "opt/m").exists()
    with pytest.raises(ActionFailed, match="no objects match"):
        call(tiny_root, endpoint, "S3Download", [{"source": f"s3://{b}/nothing/*", "destination": "/opt/n/"}])


def test_upload_file_wildcard_and_recursive(tiny_root: Path, s3: Any, endpoint: str) -> None:
    b = s3.bucket
    logs = tiny_root / "var/log/app"
    (logs / "old").mkdir(parents=True)
    (logs / "a.log").write_text("A")
    (logs / "b.log").write_text("B")
    (logs / "old/c.log").write_text("C")
    (logs / "host").symlink_to("/etc/hostname")  # resolved inside the image: not uploaded
    call(tiny_root, endpoint, "S3Upload", [
        {"source": "/var/log/app/a.log", "destination": f"s3://{b}/single/renamed.log"},
        {"source": "/var/log/app/a.log", "destination": f"s3://{b}/into/"},
        {"source": "/var/log/app/*.log", "destination": f"s3://{b}/flat/"},
        {"source": "/var/log/app", "destination": f"s3://{b}/tree/", "recurse": True},
    ])  # fmt: skip
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=b)["Contents"])
    assert [k for k in keys if k.split("/")[0] in ("single", "into", "flat", "tree")] == [
        "flat/a.log", "flat/b.log", "into/a.log", "single/renamed.log",
        "tree/a.log", "tree/b.log", "tree/old/c.log",
    ]  # fmt: skip
    assert s3.get_object(Bucket=b, Key="tree/old/c.log")["Body"].read() == b"C"
    with pytest.raises(ActionFailed, match="is a folder: use folder/\\* or recurse: true"):
        call(tiny_root, endpoint, "S3Upload", [{"source": "/var/log/app", "destination": f"s3://{b}/x/"}])


def test_missing_credentials_are_explained(
    tiny_root: Path, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tiny_root / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tiny_root / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(ActionFailed, match="no AWS credentials found"):
        call(tiny_root, endpoint, "S3Download", [{"source": "s3://b/k", "destination": "/x"}])
