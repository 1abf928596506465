"""Reference counting across images (computed from the catalog and the OCI manifests) for retire and
``kiln gc``: a blob goes only when no live image's manifest names it and it is no image's evidence."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from kiln.catalog import ArtifactRecord, Catalog, EvidenceRecord
from kiln.catalog.models import BuildRow
from kiln.lifecycle.retire import retire
from kiln.store import Store
from tests.lifecycle.conftest import record


def _blob(folder: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / digest.removeprefix("sha256:")).write_bytes(data)
    return digest


def _layout(store: Store, path: Path, layers: list[bytes], tag: str) -> tuple[Path, str, set[str]]:
    """An OCI layout at ``path`` whose blobs are also in the store's ``blobs/sha256`` (as a layout
    sharing the data dir's store would have them); returns (path, manifest digest, every digest)."""
    digests = set()
    descs = []
    for data in layers:
        for folder in (path / "blobs/sha256", store.home / "blobs/sha256"):
            digest = _blob(folder, data)
        digests.add(digest)
        descs.append(
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": len(data)}
        )
    config = json.dumps({"tag": tag}).encode()
    for folder in (path / "blobs/sha256", store.home / "blobs/sha256"):
        config_digest = _blob(folder, config)
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": config_digest, "size": len(config)},
                           "layers": descs}).encode()  # fmt: skip
    for folder in (path / "blobs/sha256", store.home / "blobs/sha256"):
        manifest_digest = _blob(folder, manifest)
    (path / "index.json").write_text(json.dumps({"manifests": [{"digest": manifest_digest}]}))
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return path, manifest_digest, digests | {config_digest, manifest_digest}


def _image(
    catalog: Catalog, store: Store, name: str, layers: list[bytes], evidence: bytes
) -> tuple[str, set[str]]:
    path, digest, blobs = _layout(store, store.home / "images" / name / "oci", layers, name)
    sbom = _blob(store.home / "blobs/sha256", evidence)
    ref = record(
        catalog, name, digest=digest,
        artifacts=[ArtifactRecord(kind="oci", path=str(path), digest=digest, size=1)],
        evidence=[EvidenceRecord(kind="sbom-spdx", path=str(store.blob_path(sbom)), digest=sbom)],
    )  # fmt: skip
    return ref, blobs | {sbom}


def test_retire_deletes_only_what_no_other_image_references(home: Store, catalog: Catalog) -> None:
    a, a_blobs = _image(catalog, home, "a", [b"shared layer", b"only a"], b"sbom of a")
    b, b_blobs = _image(catalog, home, "b", [b"shared layer", b"only b"], b"sbom of b")
    report = retire(home, catalog, a, actor="alice", reason="old")
    in_store = {"sha256:" + p.name for p in (home.home / "blobs/sha256").iterdir()}
    shared = a_blobs & b_blobs
    assert shared  # the shared layer
    sbom_of_a = "sha256:" + hashlib.sha256(b"sbom of a").hexdigest()
    assert sbom_of_a in a_blobs
    assert in_store == b_blobs | {sbom_of_a}  # a's own layer, config and manifest are gone
    assert not (home.home / "images/a/oci").exists()
    assert (home.home / "images/b/oci/index.json").is_file()
    assert report.freed > 0
    kept = dict((str(p), why) for p, why in report.kept)
    assert kept[str(home.blob_path(next(iter(shared))))] == f"referenced by {b}"
    assert catalog.get_image(a).state == "retired"


def _gc(home: Store, *args: str) -> dict[str, object]:
    env = {**os.environ, "KILN_HOME": str(home.home), "KILN_CACHE_DIR": str(home.cache)}
    env.pop("KILN_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "kiln.cli.main", "gc", "--json", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _cache_entry(home: Store, key: str, data: bytes) -> Path:
    entry = home.cache / "layers" / key
    entry.mkdir(parents=True)
    (entry / "layer.tar.gz").write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (entry / "layer.json").write_text(json.dumps({"digest": digest, "diff_id": digest, "size": len(data)}))
    return entry


def test_gc_frees_unreferenced_blobs_cache_entries_and_retired_leftovers(
    home: Store, catalog: Catalog
) -> None:
    live, live_blobs = _image(catalog, home, "live", [b"live layer"], b"sbom of live")
    gone, _ = _image(catalog, home, "gone", [b"gone layer"], b"sbom of gone")
    orphan = home.blob_path(_blob(home.home / "blobs/sha256", b"nobody's blob" * 1000))
    os.utime(orphan, (1_600_000_000, 1_600_000_000))
    used = _cache_entry(home, "a" * 64, b"live layer")
    unused = _cache_entry(home, "b" * 64, b"a layer no image uses" * 1000)
    # a retired image whose files are still there (its retire was interrupted before deleting)
    from kiln.lifecycle.states import change_state

    change_state(catalog, gone, "retired", actor="alice", reason="old")

    dry = _gc(home, "--dry-run")
    paths = {item["path"]: item["kind"] for item in dry["reclaimed"]}  # type: ignore[attr-defined]
    assert paths[str(orphan)] == "blob"
    assert paths[str(unused)] == "layer-cache"
    assert paths[str(home.home / "images/gone/oci")] == "retired-artifact"
    assert str(used) not in paths and not any(p.endswith("live/oci") for p in paths)
    assert orphan.exists() and unused.exists()  # a dry run removes nothing

    done = _gc(home)
    assert done["freed"] >= 20_000  # type: ignore[operator]
    assert not orphan.exists() and not unused.exists() and not (home.home / "images/gone/oci").exists()
    assert used.exists()
    assert all(home.blob_path(d).is_file() for d in live_blobs)  # the live image keeps everything
    sbom_of_gone = next(e for e in catalog.get_image(gone).evidence if e.kind == "sbom-spdx")
    assert home.blob_path(sbom_of_gone.digest).is_file()  # evidence is kept forever
    assert catalog.get_image(live).state == "active"
    assert _gc(home)["reclaimed"] == []  # nothing left to free


def test_gc_keeps_blobs_a_running_build_may_record(home: Store, catalog: Catalog) -> None:
    catalog.start_build(
        recipe_name="r", recipe_version="1.0.0", recipe_path="r.yaml", log_path="l"
    )  # this process: alive
    fresh = home.blob_path(_blob(home.home / "blobs/sha256", b"an SBOM being written"))
    os.utime(fresh, (1_600_000_000, 1_600_000_000))  # older than the grace hour, but the build is older still
    with catalog.session(write=True) as s, s.begin():
        s.execute(update(BuildRow).values(started=datetime(2020, 1, 1, tzinfo=UTC)))
    done = _gc(home)
    assert fresh.exists()
    assert [k["reason"] for k in done["kept"] if k["path"] == str(fresh)] == [  # type: ignore[attr-defined]
        "written recently or while a build runs: it may be about to be recorded"
    ]


def test_retire_never_deletes_outside_the_images_directory(
    home: Store, catalog: Catalog, tmp_path: Path
) -> None:
    """A catalog row is data anyone with write access to the data dir can edit: an artifact path (or a
    manifest digest) pointing elsewhere is kept, never followed."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "file").write_text("keep me")
    sneaky = home.home / "images" / "x" / "oci"
    sneaky.mkdir(parents=True)
    outside_blob = home.home / "victim"
    outside_blob.write_text("keep me too")
    (sneaky / "index.json").write_text(json.dumps({"manifests": [{"digest": "sha256:../../victim"}]}))
    ref = record(
        catalog, "x",
        artifacts=[
            ArtifactRecord(kind="raw", path=str(precious), digest="sha256:" + "1" * 64, size=1),
            ArtifactRecord(kind="qcow2", path=str(home.home / "images/x/../../../precious"), digest="sha256:" + "2" * 64, size=1),
            ArtifactRecord(kind="oci", path=str(sneaky), digest="sha256:../../victim", size=1),
        ],
    )  # fmt: skip
    report = retire(home, catalog, ref, actor="alice", reason="old")
    assert (precious / "file").read_text() == "keep me"
    assert outside_blob.read_text() == "keep me too"
    assert not sneaky.exists()  # its own layout inside images/ is deleted
    assert sum("Kiln deletes only what it wrote there" in why for _, why in report.kept) == 2


def _parent_tree(home: Store, digest: str) -> Path:
    """An unpacked parent tree as a child build leaves it in ``cache/image-parents``."""
    from kiln.rootfs import imageparent

    key = digest.removeprefix("sha256:")
    entries = imageparent.entries(home)
    (entries.entry_dir(key) / "rootfs/etc").mkdir(parents=True)
    (entries.entry_dir(key) / "rootfs/etc/os-release").write_bytes(b"x" * 5000)
    entries.commit(key, {"digest": digest})
    return entries.entry_dir(key)


def test_gc_frees_parent_trees_and_registry_copies_no_usable_image_needs(
    home: Store, catalog: Catalog
) -> None:
    from kiln.rootfs import imageparent

    base, _ = _image(catalog, home, "base", [b"base layer"], b"sbom of base")
    old, _ = _image(catalog, home, "old", [b"old layer"], b"sbom of old")
    base_digest, old_digest = catalog.get_image(base).digest, catalog.get_image(old).digest
    external = "sha256:" + "e" * 64  # an oci-layout/registry parent a live child was built on
    record(catalog, "child", parent_digest=external)
    from kiln.lifecycle.states import change_state

    change_state(catalog, old, "disabled", actor="alice", reason="superseded")
    used, child_parent = _parent_tree(home, base_digest), _parent_tree(home, external)
    unused = _parent_tree(home, old_digest)
    leased_digest = "sha256:" + "c" * 64
    leased = _parent_tree(home, leased_digest)
    copies = home.cache / "registry"
    stale, fresh = copies / ("d" * 64), copies / ("f" * 64)
    for copy in (stale, fresh):
        (copy / "oci").mkdir(parents=True)
        (copy / "oci/index.json").write_text("{}")
    os.utime(stale, (1_600_000_000, 1_600_000_000))

    lease = imageparent.entries(home).lease(leased_digest.removeprefix("sha256:"))
    lease.acquire(blocking=False)  # a build is using this tree right now
    try:
        done = _gc(home)
    finally:
        lease.release()
    kinds = {item["path"]: item["kind"] for item in done["reclaimed"]}  # type: ignore[attr-defined]
    assert kinds == {str(unused): "parent-cache", str(stale): "parent-cache"}
    assert used.exists() and child_parent.exists() and leased.exists() and fresh.exists()
    assert not unused.exists() and not stale.exists()
    kept = {item["path"] for item in done.get("kept", [])}  # type: ignore[union-attr]
    assert {str(leased), str(fresh)} <= kept
