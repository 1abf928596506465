"""Reading what another machine recorded: artifacts and evidence fetched from the shared store by digest
into this data directory (verified), OCI layouts rebuilt from their blobs, shipped logs mirrored."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.catalog.schemas import BuildRecord
from kiln.errors import KilnError
from kiln.models import Artifact
from kiln.objectstore import CorruptObject, open_object_store, publish
from kiln.readthrough import artifact_file, blob_file
from kiln.shippedlogs import LogShipper, end_key, log_file, shipped_in_full
from kiln.store import Store


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layout(folder: Path) -> str:
    """A tiny OCI layout (one layer); returns its manifest digest."""
    blobs = folder / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer, config = b"layer bytes", b'{"architecture":"amd64"}'
    manifest = json.dumps({"config": {"digest": digest_of(config)}, "layers": [{"digest": digest_of(layer)}]})
    for data in (layer, config, manifest.encode()):
        (blobs / digest_of(data).removeprefix("sha256:")).write_bytes(data)
    index = {"manifests": [{"digest": digest_of(manifest.encode())}]}
    (folder / "index.json").write_text(json.dumps(index))
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return digest_of(manifest.encode())


@pytest.fixture
def machines(tmp_path: Path) -> tuple[Store, Store, str]:
    """A worker and a reader: two data directories sharing one store directory."""
    shared = str(tmp_path / "shared")
    worker = Store.open_at(tmp_path / "worker", tmp_path / "worker/cache", shared=shared)
    reader = Store.open_at(tmp_path / "reader", tmp_path / "reader/cache", shared=shared)
    return worker, reader, shared


def test_artifacts_are_fetched_verified_and_cached(machines: tuple[Store, Store, str]) -> None:
    worker, reader, shared = machines
    out = worker.home / "images" / "web" / "1.0.0-abc"
    out.mkdir(parents=True)
    (out / "disk.qcow2").write_bytes(b"disk image")
    manifest = make_layout(out / "oci")
    disk = Artifact(kind="qcow2", path=str(out / "disk.qcow2"), digest=digest_of(b"disk image"), size=10)
    oci = Artifact(kind="oci", path=str(out / "oci"), digest=manifest, size=0)
    assert artifact_file(worker, disk) == out / "disk.qcow2"  # its own: read where it was written
    with pytest.raises(KilnError, match=r"neither at .* nor in"):
        artifact_file(reader, disk)  # not published yet
    publish(
        open_object_store(shared, worker.home),
        [("qcow2", disk.path, disk.digest), ("oci", oci.path, manifest)],
    )

    got = artifact_file(reader, disk)
    assert got == reader.home / "remote/web/1.0.0-abc/disk.qcow2" and got.read_bytes() == b"disk image"
    layout = artifact_file(reader, oci)
    assert layout == reader.home / "remote/web/1.0.0-abc/oci"
    assert (layout / "index.json").read_bytes() == (out / "oci/index.json").read_bytes()
    assert sorted(p.name for p in (layout / "blobs/sha256").iterdir()) == sorted(
        p.name for p in (out / "oci/blobs/sha256").iterdir()
    )
    (out / "disk.qcow2").unlink()  # the reader's copy is its cache: the store is not asked again
    assert artifact_file(reader, disk).read_bytes() == b"disk image"


def test_corrupt_objects_are_refused_and_leave_nothing(machines: tuple[Store, Store, str]) -> None:
    worker, reader, shared = machines
    out = worker.home / "images" / "web" / "1.0.0-abc"
    manifest = make_layout(out / "oci")
    publish(open_object_store(shared, worker.home), [("oci", str(out / "oci"), manifest)])
    layer = digest_of(b"layer bytes")
    (Path(shared) / "sha256" / layer.removeprefix("sha256:")).write_bytes(b"evil")
    with pytest.raises(CorruptObject, match=f"object {layer} .* is corrupt"):
        artifact_file(reader, Artifact(kind="oci", path=str(out / "oci"), digest=manifest, size=0))
    assert not (reader.home / "remote/web/1.0.0-abc/oci").exists()  # no half layout left behind
    evidence = worker.home / "sbom.json"
    evidence.write_bytes(b"{}")
    open_object_store(shared, worker.home).put(evidence, digest_of(b"{}"))
    assert blob_file(reader, digest_of(b"{}")).read_bytes() == b"{}"
    assert blob_file(reader, digest_of(b"{}")) == reader.blob_path(digest_of(b"{}"))


def test_an_index_naming_another_manifest_is_refused(machines: tuple[Store, Store, str]) -> None:
    worker, reader, shared = machines
    out = worker.home / "images" / "web" / "1.0.0-abc"
    manifest = make_layout(out / "oci")
    store = open_object_store(shared, worker.home)
    publish(store, [("oci", str(out / "oci"), manifest)])
    store.put_named(f"oci-index/{manifest.removeprefix('sha256:')}.json",
                    json.dumps({"manifests": [{"digest": digest_of(b"x")}]}).encode())  # fmt: skip
    with pytest.raises(KilnError, match="does not name that manifest"):
        artifact_file(reader, Artifact(kind="oci", path=str(out / "oci"), digest=manifest, size=0))


def test_shipped_log_is_mirrored_in_order(machines: tuple[Store, Store, str]) -> None:
    worker, reader, shared = machines
    log = worker.home / "logs" / "b1.jsonl"
    build = BuildRecord.model_construct(id="b1", log_path=str(log), status="running",
                                        started=datetime.now(UTC))  # fmt: skip
    shipper = LogShipper(open_object_store(shared, worker.home), "b1", 1)
    log.write_text('{"n": 1}\n{"n": 2}\n{"n": 3, "torn')
    assert shipper.ship(log) == len('{"n": 1}\n{"n": 2}\n')  # whole lines only
    assert log_file(reader, build).read_text() == '{"n": 1}\n{"n": 2}\n'
    assert not shipped_in_full(reader, build)
    with open(log, "a") as fh:
        fh.write('"}\n')
    shipper.ship(log)
    assert shipper.ship(log) == 0  # nothing new
    open_object_store(shared, worker.home).put_named(end_key("b1", 1), b"{}")
    assert log_file(reader, build).read_text() == log.read_text()
    assert shipped_in_full(reader, build)
    assert log_file(worker, build) == log  # the worker reads its own file
