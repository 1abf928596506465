"""RAM scratch for the parent bootstrap: mounted while needed, gone afterwards, off on request."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.sandbox.overlay import mounts_under
from kiln.sandbox.tmpfs import nearly_full, ram_scratch, spare_memory
from kiln.settings import Settings


def _fs_type(path: Path) -> str:
    with open("/proc/self/mounts", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if fields[1] == str(path):
                return fields[2]
    return ""


def test_ram_scratch_is_a_tmpfs_only_inside_the_block(tmp_path: Path) -> None:
    assert spare_memory() > 0
    target = tmp_path / "ram"
    with ram_scratch(target) as in_ram:
        assert in_ram and _fs_type(target) == "tmpfs"
        (target / "file").write_bytes(b"x" * 4096)
        assert not nearly_full(target)
    assert mounts_under(tmp_path) == [] and list(target.iterdir()) == []


def test_ram_scratch_unmounts_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), ram_scratch(tmp_path / "ram"):
        raise RuntimeError("bootstrap failed")
    assert mounts_under(tmp_path) == []


def test_ram_scratch_can_be_turned_off(tmp_path: Path) -> None:
    assert not Settings.from_env({"KILN_TMPFS": "0"}).tmpfs
    with ram_scratch(tmp_path / "ram", allowed=False) as in_ram:
        assert not in_ram and _fs_type(tmp_path / "ram") == ""
    assert (tmp_path / "ram").is_dir()


def test_parent_too_big_for_memory_is_bootstrapped_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bootstrap that fills the RAM scratch is run again on disk, with a warning; nothing is lost."""
    from kiln.errors import CommandFailed
    from kiln.monitor import ListMonitor
    from kiln.rootfs import debian
    from kiln.sandbox import tmpfs
    from kiln.store import Store

    monkeypatch.setattr(tmpfs, "MIN_BYTES", 0)
    monkeypatch.setattr(tmpfs, "spare_memory", lambda: 8 << 20)
    calls: list[str] = []

    def fake_bootstrap(parent: object, target: Path, *args: object, **kwargs: object) -> list[object]:
        calls.append(_fs_type(target.parent) or "disk")
        (target / "var/lib/dpkg").mkdir(parents=True)
        (target / "var/lib/dpkg/status").write_text("")
        if len(calls) == 1:
            with open(target / "big", "wb") as fh, pytest.raises(OSError):
                while True:
                    fh.write(b"\0" * (1 << 20))
                    fh.flush()
            raise CommandFailed(["mmdebstrap"], 1, "No space left on device")
        return []  # the archive state (none: nothing was fetched)

    monkeypatch.setattr(debian, "bootstrap", fake_bootstrap)
    store = Store.open_at(tmp_path / "home", tmp_path / "cache")
    parent = debian.DebianParent(
        distribution="debian", suite="bookworm", mirror="http://deb.debian.org/debian"
    )
    monitor = ListMonitor()
    root = debian.ensure_parent(parent, store, monitor, epoch=1)
    assert calls == ["tmpfs", "disk"]
    assert sorted(p.name for p in root.rootfs.parent.iterdir()) == ["lease", "parent.json", "rootfs"]
    assert (root.rootfs / "var/lib/dpkg/status").is_file() and not (root.rootfs / "big").exists()
    assert any("outgrew the memory scratch" in e.message for e in monitor.events)
    assert mounts_under(tmp_path) == []
