"""The shared artifact store: a directory or S3 (moto's server on 127.0.0.1); objects by digest,
reads streamed and verified."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.errors import KilnError
from kiln.objectstore import CorruptObject, ObjectStore, fetch, open_object_store, publish
from tests.distribute.servers import moto


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ObjectStore:
    if request.param == "local":
        return open_object_store(str(tmp_path / "shared"), tmp_path / "home")
    endpoint: str = request.getfixturevalue("s3_endpoint")
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
                        "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    bucket = f"kiln-{os.urandom(4).hex()}"
    opened = open_object_store(f"s3://{bucket}/site/a", tmp_path / "home")
    opened.s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return opened


def blob(tmp_path: Path, size: int = 3 * (1 << 20) + 17) -> tuple[Path, str]:
    path = tmp_path / "disk.qcow2"
    path.write_bytes(os.urandom(size))
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def tamper(store: ObjectStore, digest: str) -> None:
    if hasattr(store, "s3"):
        store.s3.put_object(Bucket=store.bucket, Key=store.key(digest), Body=b"evil")  # type: ignore[attr-defined]
    else:
        store.path(digest).write_bytes(b"evil")  # type: ignore[attr-defined]


def test_put_fetch_verify(store: ObjectStore, tmp_path: Path) -> None:
    path, digest = blob(tmp_path)
    assert not store.has(digest)
    store.put(path, digest)
    assert store.has(digest)
    store.put(path, digest)  # already there: nothing rewritten, no error
    got = fetch(store, digest, tmp_path / "out" / "disk.qcow2")
    assert got.read_bytes() == path.read_bytes()
    with pytest.raises(CorruptObject, match="does not have digest"):
        store.put(path, "sha256:" + "0" * 64)
    tamper(store, digest)
    with pytest.raises(CorruptObject, match=f"object {digest} in .* is corrupt"):
        fetch(store, digest, tmp_path / "bad" / "disk.qcow2")
    assert list((tmp_path / "bad").iterdir()) == []  # nothing partial left behind
    with pytest.raises(KilnError, match="is not"):
        fetch(store, "sha256:" + "1" * 64, tmp_path / "missing")


def test_publish_puts_files_and_layout_blobs(store: ObjectStore, tmp_path: Path) -> None:
    path, digest = blob(tmp_path, 1000)
    layout = tmp_path / "oci"
    (layout / "blobs/sha256").mkdir(parents=True)
    digests = []
    for text in (b"manifest", b"layer"):
        hexdigest = hashlib.sha256(text).hexdigest()
        (layout / "blobs/sha256" / hexdigest).write_bytes(text)
        digests.append(f"sha256:{hexdigest}")
    assert publish(store, [("qcow2", str(path), digest), ("oci", str(layout), digests[0])]) == 3
    assert all(store.has(d) for d in [digest, *digests])
    with pytest.raises(KilnError, match="is missing"):
        publish(store, [("raw", str(tmp_path / "gone.raw"), digest)])


def test_store_urls(tmp_path: Path) -> None:
    assert open_object_store(None, tmp_path).url == str(tmp_path / "blobs")
    assert open_object_store(f"file://{tmp_path}/x", tmp_path).url == f"{tmp_path}/x"
    with pytest.raises(KilnError, match="unsupported scheme 'ftp'"):
        open_object_store("ftp://host/x", tmp_path)
    with pytest.raises(KilnError, match="names no bucket"):
        open_object_store("s3:///x", tmp_path)


def test_named_objects(store: ObjectStore) -> None:
    assert store.get_named("logs/b1/001/000000000000.jsonl") is None
    assert store.names("logs/b1") == []
    store.put_named("logs/b1/001/000000000010.jsonl", b"second")
    store.put_named("logs/b1/001/000000000000.jsonl", b"first")
    store.put_named("logs/b2/001/000000000000.jsonl", b"other")
    assert store.names("logs/b1") == ["logs/b1/001/000000000000.jsonl", "logs/b1/001/000000000010.jsonl"]
    assert store.get_named("logs/b1/001/000000000010.jsonl") == b"second"
    for bad in ("../escape", "/abs", "sha256/" + "0" * 64, "Upper"):
        with pytest.raises(KilnError, match="not a named-object key"):
            store.put_named(bad, b"x")


def test_delete_by_digest_and_by_name(store: ObjectStore, tmp_path: Path) -> None:
    path, digest = blob(tmp_path, 1000)
    store.put(path, digest)
    store.put_named("oci-index/" + "a" * 64 + ".json", b"{}")
    assert store.has(digest)
    store.delete(digest)
    store.delete_named("oci-index/" + "a" * 64 + ".json")
    assert not store.has(digest) and store.get_named("oci-index/" + "a" * 64 + ".json") is None
    store.delete(digest)  # absent: nothing to do
    store.delete_named("oci-index/" + "a" * 64 + ".json")
