"""Shared cache entries under concurrency: locks, leases and atomic commits, with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kiln.build import layercache
from kiln.cachelock import FileLock, add_files, replace_files, try_exclusive
from kiln.rootfs import parentcache
from kiln.store import Store


def child(code: str) -> subprocess.Popen[str]:
    """A Python process running ``code`` (with this worktree's kiln), its stdout piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True)


def wait_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == expected, f"child said {line!r} (exit {proc.poll()})"


def test_a_lock_held_by_a_killed_process_is_released(tmp_path: Path) -> None:
    path = tmp_path / "entry.lock"
    holder = child(f"""
        import time
        from pathlib import Path
        from kiln.cachelock import FileLock
        FileLock(Path({str(path)!r})).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    wait_line(holder, "locked")
    lock = FileLock(path)
    assert not lock.acquire(blocking=False)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock.acquire(blocking=False)  # flock went with the process: no stale lock to clean up
    lock.release()


def test_shared_leases_exclude_removal_but_not_each_other(tmp_path: Path) -> None:
    lease = tmp_path / "x.lease"
    first, second = FileLock(lease), FileLock(lease)
    assert first.acquire(shared=True, blocking=False)
    assert second.acquire(shared=True, blocking=False)
    assert try_exclusive(lease) is None
    first.release()
    second.release()
    second.release()  # twice is harmless
    held = try_exclusive(lease)
    assert held is not None
    held[0].release()


def test_a_waiter_locks_the_file_that_replaced_a_removed_one(tmp_path: Path) -> None:
    path = tmp_path / "entry.lock"
    holder = FileLock(path)
    holder.acquire()
    waited: list[bool] = []
    done: list[bool] = []
    import threading

    def wait() -> None:
        lock = FileLock(path)
        lock.acquire(on_wait=lambda: waited.append(True))
        done.append(True)
        lock.release()

    thread = threading.Thread(target=wait)
    thread.start()
    while not waited:
        time.sleep(0.01)
    path.unlink()  # the entry (and its lock file) went while the waiter waited
    holder.release()
    thread.join(5)
    assert done == [True]
    assert path.exists()


RACE = """
    import json, sys, time
    from pathlib import Path
    from kiln.build import layercache
    from kiln.store import Store
    store = Store.open_at(Path(sys.argv[1]), Path(sys.argv[2]))
    claim = layercache.claim(store, "k" * 64)
    if claim.hit is None:
        assert claim.create is not None
        tree = Path(sys.argv[1]) / "tree"
        (tree / "etc").mkdir(parents=True)
        (tree / "etc/made-by").write_text(sys.argv[1])
        time.sleep(0.5)  # a slow build phase: the others arrive meanwhile and must wait
        entry = store.layer_dir(claim.key)
        upper = layercache.adopt_tree(entry, tree)
        blob = layercache.write(entry, upper, "upper", 0, 1, {"key": claim.key})
        claim.release()
        print(json.dumps({"made": True, "digest": blob.digest}))
    else:
        print(json.dumps({"made": False, "digest": claim.hit[0].digest}))
"""


def test_racing_builders_of_one_key_make_it_once_and_share_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RACE), str(tmp_path / f"home{i}"), str(cache)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(r["made"] for r in results) == 1
    assert len({r["digest"] for r in results}) == 1
    store = Store.open_at(tmp_path / "home0", cache)
    hit = layercache.load(store, "k" * 64)
    assert hit is not None and hit[0].digest == results[0]["digest"]


def test_a_builder_killed_mid_entry_leaves_nothing_a_reader_uses(tmp_path: Path) -> None:
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    key = "d" * 64
    maker = child(f"""
        import time
        from pathlib import Path
        from kiln.build import layercache
        from kiln.store import Store
        store = Store.open_at(Path({str(tmp_path / "home")!r}), Path({str(tmp_path / "cache")!r}))
        claim = layercache.claim(store, {key!r})
        entry = store.layer_dir({key!r})
        (entry / "upper").mkdir(parents=True)
        (entry / "layer.tar.gz").write_bytes(b"half a blob")
        print("half", flush=True)
        time.sleep(60)
    """)
    wait_line(maker, "half")
    assert layercache.load(store, key) is None  # no layer.json: not an entry
    assert not layercache.remove(store, key)  # being made: gc leaves it alone
    maker.send_signal(signal.SIGKILL)
    maker.wait()
    claim = layercache.claim(store, key)  # the maker died: its lock went, its debris goes
    assert claim.hit is None and claim.create is not None
    assert not store.layer_dir(key).exists()
    claim.release()


def test_a_reader_never_sees_half_an_entry(tmp_path: Path) -> None:
    """A reader polling while a writer makes many entries sees each one absent or whole."""
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    tree = tmp_path / "tree"
    (tree / "usr/share/doc").mkdir(parents=True)
    (tree / "usr/share/doc/big").write_bytes(os.urandom(1 << 20))
    keys = [f"{i:064x}" for i in range(8)]
    writer = child(f"""
        from pathlib import Path
        from kiln.build import layercache
        from kiln.store import Store
        store = Store.open_at(Path({str(tmp_path / "home2")!r}), Path({str(tmp_path / "cache")!r}))
        for key in {keys!r}:
            claim = layercache.claim(store, key)
            layercache.write(store.layer_dir(key), Path({str(tree)!r}), "upper", 0, 1, {{"key": key}})
            claim.release()
        print("done", flush=True)
    """)
    seen: set[str] = set()
    while writer.poll() is None or len(seen) < len(keys):
        for key in keys:
            hit = layercache.load(store, key)
            if hit is not None:
                blob, meta = hit
                assert meta["key"] == key and blob.path.stat().st_size == blob.size
                seen.add(key)
        if writer.poll() not in (None, 0):
            break
    assert writer.wait() == 0
    assert seen == set(keys)


def test_gc_cannot_remove_a_layer_in_use(tmp_path: Path) -> None:
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    key = "e" * 64
    maker = layercache.claim(store, key)
    layercache.write(store.layer_dir(key), tree, "upper", 0, 1, {})
    maker.release()
    user = layercache.claim(store, key)
    assert user.hit is not None
    assert not layercache.remove(store, key)
    user.release()
    assert layercache.remove(store, key)
    assert layercache.load(store, key) is None


def test_no_cache_never_replaces_an_entry(tmp_path: Path) -> None:
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    key = "f" * 64
    (tmp_path / "tree").mkdir()
    first = layercache.claim(store, key)
    layercache.write(store.layer_dir(key), tmp_path / "tree", "upper", 0, 1, {})
    first.release()
    again = layercache.claim(store, key, reuse=False)
    assert again.hit is None and again.create is None  # build privately: others may use the entry
    again.release()


def _version(entry: Path, content: str) -> Path:
    directory = parentcache.new_version(entry)
    (directory / "rootfs/etc").mkdir(parents=True)
    (directory / "rootfs/etc/content").write_text(content)
    return directory


def test_a_refreshed_parent_keeps_the_old_version_while_a_build_uses_it(tmp_path: Path) -> None:
    entry = tmp_path / "parents/p"
    entry.mkdir(parents=True)
    assert parentcache.lease_current(entry) is None
    parentcache.publish(entry, _version(entry, "old"), {"source_date_epoch": 1})
    user = parentcache.lease_current(entry)
    assert user is not None and (user.rootfs / "etc/content").read_text() == "old"

    new = _version(entry, "new")
    other = parentcache.lease_current(entry)
    assert other is not None and other.dir == user.dir  # unfinished: nobody sees it
    other.release()
    parentcache.publish(entry, new, {"source_date_epoch": 2})
    assert parentcache.current_dir(entry) == new
    assert (user.rootfs / "etc/content").read_text() == "old"  # still there for its user
    later = parentcache.lease_current(entry)
    assert later is not None and later.meta["source_date_epoch"] == 2
    user.release()  # the last user of the old version removes it
    assert sorted(p.name for p in entry.iterdir()) == ["current", new.name]
    later.release()
    assert later.rootfs.is_dir()  # current: stays


def test_the_old_layout_is_read_and_replaced_safely(tmp_path: Path) -> None:
    entry = tmp_path / "parents/p"
    (entry / "rootfs/etc").mkdir(parents=True)
    (entry / "parent.json").write_text(json.dumps({"source_date_epoch": 7}))
    user = parentcache.lease_current(entry)
    assert user is not None and user.id == "" and user.rootfs == entry / "rootfs"
    new = _version(entry, "new")
    parentcache.publish(entry, new, {"source_date_epoch": 8})
    assert (entry / "rootfs").is_dir()  # in use
    user.release()
    assert not (entry / "rootfs").exists() and not (entry / "parent.json").exists()
    current = parentcache.lease_current(entry)
    assert current is not None and current.dir == new
    current.release()


def test_sweep_removes_what_dead_builds_left(tmp_path: Path) -> None:
    entry = tmp_path / "parents/p"
    entry.mkdir(parents=True)
    parentcache.publish(entry, _version(entry, "ok"), {"source_date_epoch": 1})
    dead = _version(entry, "half")  # a bootstrap killed before its publish
    (entry / ".trash-v-x").mkdir()
    parentcache.sweep(entry)
    assert not dead.exists() and not (entry / ".trash-v-x").exists()
    assert parentcache.current_dir(entry) is not None


def test_parent_entry_waits_for_its_maker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ensure_parent of one parent at once: the second waits for the first and reuses its root."""
    from kiln.monitor import ListMonitor
    from kiln.rootfs import debian

    calls: list[Path] = []

    def fake_bootstrap(parent: object, target: Path, *args: object, **kwargs: object) -> list[object]:
        calls.append(target)
        (target / "var/lib/dpkg").mkdir(parents=True)
        (target / "var/lib/dpkg/status").write_text("")
        time.sleep(0.5)
        return []  # the archive state (none: nothing was fetched)

    monkeypatch.setattr(debian, "bootstrap", fake_bootstrap)
    parent = debian.DebianParent(
        distribution="debian", suite="bookworm", mirror="http://deb.debian.org/debian"
    )
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    import threading

    roots: list[debian.ParentRoot] = []
    threads = [
        threading.Thread(
            target=lambda: roots.append(debian.ensure_parent(parent, store, ListMonitor(), epoch=1))
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(calls) == 1 and len(roots) == 3
    assert len({root.rootfs for root in roots}) == 1 and sum(root.cached for root in roots) == 2
    for root in roots:
        root.release()


def test_add_files_keeps_what_is_there_and_replace_files_swaps_whole_files(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    (src / "a.deb").write_text("new a")
    (src / "b.deb").write_text("b")
    (src / "notes.txt").write_text("x")
    (dest / "a.deb").write_text("old a")
    assert add_files(src, dest, "*.deb") == 1
    assert (dest / "a.deb").read_text() == "old a" and (dest / "b.deb").read_text() == "b"
    assert sorted(p.name for p in dest.iterdir()) == ["a.deb", "b.deb"]  # no temporary files left
    assert replace_files(src, dest, skip=("notes.txt",)) == 2
    assert (dest / "a.deb").read_text() == "new a"
    assert sorted(p.name for p in dest.iterdir()) == ["a.deb", "b.deb"]
