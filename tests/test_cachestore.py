"""The keyed cache store: one completeness rule for every cache entry, commits by one rename."""

from __future__ import annotations

import json
from pathlib import Path

from kiln.cachestore import KeyedCache, read_marker, write_marker


def test_an_entry_is_complete_only_with_its_marker_and_required_files(tmp_path: Path) -> None:
    cache = KeyedCache(tmp_path / "layers", "layer.json", requires=lambda entry, _: [entry / "blob"])
    assert cache.get("k") is None
    cache.entry_dir("k").mkdir(parents=True)
    (cache.entry_dir("k") / "blob").write_bytes(b"data")
    assert cache.get("k") is None  # contents without a marker: debris of an interrupted maker
    cache.commit("k", {"digest": "sha256:x"})
    assert cache.get("k") == {"digest": "sha256:x"}
    assert sorted(p.name for p in cache.entry_dir("k").iterdir()) == ["blob", "layer.json"]  # no temp files
    (cache.entry_dir("k") / "blob").unlink()
    assert cache.get("k") is None  # a required file went away


def test_torn_or_foreign_markers_are_not_entries(tmp_path: Path) -> None:
    flat = KeyedCache(tmp_path / "tested")
    flat.root.mkdir()
    flat.marker("torn").write_text('{"key": "to')  # what a non-atomic writer could leave
    flat.marker("list").write_text("[1, 2]")
    assert flat.get("torn") is None and flat.get("list") is None
    flat.commit("ok", {"key": "ok"})
    assert json.loads(flat.marker("ok").read_text()) == {"key": "ok"}
    assert flat.get("ok") == {"key": "ok"}


def test_required_files_can_come_from_the_marker(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_text("x")
    write_marker(tmp_path / "memo.json", {"files": [str(blob)]})
    named = lambda meta: [Path(p) for p in meta["files"]]  # noqa: E731
    assert read_marker(tmp_path / "memo.json", named) == {"files": [str(blob)]}
    blob.unlink()
    assert read_marker(tmp_path / "memo.json", named) is None


def test_remove_leaves_an_entry_someone_uses(tmp_path: Path) -> None:
    cache = KeyedCache(tmp_path / "validated")
    cache.commit("k", {"key": "k"})
    lease = cache.lease("k")
    lease.acquire(shared=True)
    assert cache.remove("k") is False and cache.get("k") is not None
    lease.release()
    assert cache.remove("k") is True and cache.get("k") is None
