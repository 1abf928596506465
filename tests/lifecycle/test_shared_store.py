"""Retiring with a shared store (a local-path ``KILN_STORE_URL``, two data directories sharing one
catalog): the image's objects that no other live image needs leave the store, from whichever machine
retires it; ``kiln gc`` empties the read-through cache ``remote/`` of retired and unknown images."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from kiln.catalog import ArtifactRecord, Catalog, EvidenceRecord
from kiln.lifecycle.reclaim import collect_garbage
from kiln.lifecycle.retire import retire
from kiln.lifecycle.states import change_state
from kiln.models import Artifact
from kiln.objectstore import LocalObjectStore, index_key, publish
from kiln.readthrough import artifact_file, cache_path
from kiln.store import Store
from tests.lifecycle.conftest import record


def _put(folder: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / digest.removeprefix("sha256:")).write_bytes(data)
    return digest


def _image(
    catalog: Catalog, worker: Store, shared: LocalObjectStore, name: str, layers: list[bytes]
) -> tuple[str, str, set[str]]:
    """An image built on the worker and published: (ref, manifest digest, its OCI blob digests)."""
    layout = worker.home / "images" / name / f"1.0.0-{hashlib.sha256(name.encode()).hexdigest()[:12]}" / "oci"
    blobs = layout / "blobs" / "sha256"
    descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _put(blobs, data),
              "size": len(data)} for data in layers]  # fmt: skip
    config = _put(blobs, json.dumps({"image": name}).encode())
    manifest = _put(
        blobs, json.dumps({"schemaVersion": 2, "config": {"digest": config}, "layers": descs}).encode()
    )
    (layout / "index.json").write_text(json.dumps({"manifests": [{"digest": manifest}]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    sbom = _put(worker.home / "blobs" / "sha256", f"sbom of {name}".encode())
    sbom_path = worker.blob_path(sbom)
    publish(shared, [("oci", str(layout), manifest), ("sbom-spdx", str(sbom_path), sbom)])
    ref = record(catalog, name, digest=manifest,
                 artifacts=[ArtifactRecord(kind="oci", path=str(layout), digest=manifest, size=1)],
                 evidence=[EvidenceRecord(kind="sbom-spdx", path=str(sbom_path), digest=sbom)])  # fmt: skip
    return ref, manifest, {d["digest"] for d in descs} | {config, manifest}


def test_retire_deletes_shared_objects_and_gc_empties_remote(tmp_path: Path) -> None:
    url, database = str(tmp_path / "shared"), f"sqlite:///{tmp_path / 'catalog.db'}"
    worker = Store.open_at(tmp_path / "worker", tmp_path / "worker/cache", database, shared=url)
    reader = Store.open_at(tmp_path / "reader", tmp_path / "reader/cache", database, shared=url)
    shared = LocalObjectStore(Path(url))
    with Catalog.open(database) as catalog:
        a, a_manifest, a_blobs = _image(catalog, worker, shared, "a", [b"shared layer", b"only a"])
        b, b_manifest, b_blobs = _image(catalog, worker, shared, "b", [b"shared layer", b"only b"])
        for ref in (a, b):  # the reader has read both images: its read-through cache holds them
            (oci,) = catalog.get_image(ref).artifacts
            assert (
                artifact_file(reader, Artifact(kind="oci", path=oci.path, digest=oci.digest, size=1))
                / "index.json"
            ).is_file()
        ghost = reader.home / "remote" / "ghost" / "1.0.0-0123456789ab"
        ghost.mkdir(parents=True)
        (ghost / "x").write_bytes(b"x" * 5000)
        mirror = reader.home / "remote" / "logs" / "b1-1.jsonl"
        mirror.parent.mkdir(parents=True)
        mirror.write_text("{}\n")

        report = retire(reader, catalog, a, actor="alice", reason="old")  # from the machine without a's files

        in_store = {"sha256:" + p.name for p in (Path(url) / "sha256").iterdir()}
        sbom_of_a = next(e.digest for e in catalog.get_image(a).evidence)
        assert (a_blobs - b_blobs).isdisjoint(in_store)  # a's own layer, config and manifest are gone
        assert b_blobs <= in_store and sbom_of_a in in_store  # b keeps everything; evidence stays
        assert shared.get_named(index_key(a_manifest)) is None
        assert shared.get_named(index_key(b_manifest)) is not None
        shared_layer = next(iter(a_blobs & b_blobs))
        assert (shared_layer, f"referenced by {b}") in report.shared.kept
        assert sorted(report.shared.removed) == sorted([*(a_blobs - b_blobs), index_key(a_manifest)])

        a_cached = cache_path(reader, catalog.get_image(a).artifacts[0].path).parent
        b_cached = cache_path(reader, catalog.get_image(b).artifacts[0].path).parent
        dry = collect_garbage(reader, dry_run=True)
        remote = {item.path: item.reason for item in dry.reclaimed if item.kind == "remote-cache"}
        assert remote == {a_cached: f"{a} is retired", ghost: "no image in this catalog is cached here"}
        assert a_cached.is_dir() and ghost.is_dir()  # a dry run removes nothing
        done = collect_garbage(reader)
        assert sum(i.size for i in done.reclaimed if i.kind == "remote-cache") >= 5000
        assert not a_cached.exists() and not ghost.exists()
        assert (b_cached / "oci" / "index.json").is_file() and mirror.is_file()


def test_gc_finishes_an_interrupted_retire_in_the_shared_store(tmp_path: Path) -> None:
    url, database = str(tmp_path / "shared"), f"sqlite:///{tmp_path / 'catalog.db'}"
    worker = Store.open_at(tmp_path / "worker", tmp_path / "worker/cache", database, shared=url)
    reader = Store.open_at(tmp_path / "reader", tmp_path / "reader/cache", database, shared=url)
    shared = LocalObjectStore(Path(url))
    with Catalog.open(database) as catalog:
        a, _, a_blobs = _image(catalog, worker, shared, "a", [b"shared layer", b"only a"])
        _, _, b_blobs = _image(catalog, worker, shared, "b", [b"shared layer", b"only b"])
        change_state(catalog, a, "retired", actor="alice", reason="old")  # retire stopped after the state
        dry = collect_garbage(reader, dry_run=True)
        listed = {i.path for i in dry.reclaimed if i.kind == "shared-object"}
        assert {shared.path(d) for d in a_blobs - b_blobs} <= listed
        assert all(shared.has(d) for d in a_blobs)
        collect_garbage(reader)
        assert not any(shared.has(d) for d in a_blobs - b_blobs)
        assert all(shared.has(d) for d in b_blobs)
        assert not [i for i in collect_garbage(reader).reclaimed if i.kind == "shared-object"]
