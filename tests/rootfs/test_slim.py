"""slim: Debian's -slim rules (debuerreotype) plus Kiln's extras, on synthetic and real roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kiln.rootfs.debian import ParentRoot
from kiln.rootfs.slim import DPKG_CONFIG, SlimError, SlimOptions, slim, tree_size
from kiln.sandbox.bwrap import SandboxOptions
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.run import run


def write(path: Path, data: str = "x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    write(r / "usr/share/doc/bash/copyright")
    write(r / "usr/share/doc/bash/README.gz")
    write(r / "usr/share/doc/bash/examples/deep/script")
    (r / "usr/share/doc/libfoo").mkdir(parents=True)
    (r / "usr/share/doc/libfoo-dev").symlink_to("libfoo")  # points at a dir that becomes empty
    (r / "usr/share/doc/libbar").symlink_to("bash")  # points at a dir that keeps its copyright
    (r / "usr/share/doc/abs-link").symlink_to("/usr/share/doc/bash")
    write(r / "usr/share/man/man1/bash.1.gz")
    write(r / "usr/share/info/bash.info.gz")
    write(r / "usr/share/locale/locale.alias")
    write(r / "usr/share/locale/de/LC_MESSAGES/apt.mo")
    write(r / "usr/share/locale/de_AT/LC_MESSAGES/apt.mo")
    write(r / "usr/share/locale/fr/LC_MESSAGES/apt.mo")
    write(r / "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease")
    write(r / "var/lib/apt/lists/lock", "")
    write(r / "var/lib/apt/lists/partial/half")
    write(r / "var/cache/apt/pkgcache.bin")
    write(r / "var/cache/apt/archives/nginx_1.22_amd64.deb")
    write(r / "var/cache/apt/archives/lock", "")
    write(r / "var/log/apt/history.log")
    write(r / "var/log/dpkg.log.1")
    write(r / "var/log/nginx/access.log.2.gz")
    write(r / "usr/lib/python3/dist-packages/x/__pycache__/x.cpython-311.pyc")
    write(r / "usr/lib/python3/dist-packages/x/__init__.py")
    write(r / "etc/dpkg/dpkg.cfg.d/excludes", "# existing\n")
    return r


def test_default_slim(root: Path) -> None:
    report = slim(root)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    docs = [p for p in left if p.startswith("usr/share/")]
    assert docs == [
        "usr/share/doc",
        "usr/share/doc/abs-link",
        "usr/share/doc/bash",
        "usr/share/doc/bash/copyright",
        "usr/share/doc/libbar",
        "usr/share/info",  # the excluded directories themselves stay, like debuerreotype's
        "usr/share/locale",
        "usr/share/locale/locale.alias",
        "usr/share/man",
    ]
    assert sorted(p.name for p in (root / "var/lib/apt/lists").iterdir()) == ["lock", "partial"]
    assert list((root / "var/lib/apt/lists/partial").iterdir()) == []
    assert sorted(p.name for p in (root / "var/cache/apt/archives").iterdir()) == ["lock"]
    assert not (root / "var/cache/apt/pkgcache.bin").exists()
    assert (root / "var/log/apt/history.log").stat().st_size == 0  # truncated, kept
    assert (
        not (root / "var/log/dpkg.log.1").exists() and not (root / "var/log/nginx/access.log.2.gz").exists()
    )
    assert (root / "var/log/nginx").is_dir()
    assert not (root / "usr/lib/python3/dist-packages/x/__pycache__").exists()
    assert (root / "usr/lib/python3/dist-packages/x/__init__.py").exists()
    config = (root / DPKG_CONFIG).read_text()
    assert (
        "path-exclude /usr/share/doc/*\n" in config and "path-include /usr/share/doc/*/copyright\n" in config
    )
    assert report.size_after == tree_size(root) < report.size_before
    assert report.removed["/usr/share/man/*"] == 1 and report.removed["__pycache__"] == 1


def test_keep_locales(root: Path) -> None:
    slim(root, SlimOptions(keep_locales=("de",)))
    kept = sorted(
        str(p.relative_to(root / "usr/share/locale")) for p in (root / "usr/share/locale").rglob("*.mo")
    )
    assert kept == ["de/LC_MESSAGES/apt.mo", "de_AT/LC_MESSAGES/apt.mo"]
    assert "path-include /usr/share/locale/de/*" in (root / DPKG_CONFIG).read_text()


def test_debian_preset_keeps_logs_and_pycache(root: Path) -> None:
    slim(root, SlimOptions.debian_slim())
    assert (root / "var/log/dpkg.log.1").exists()
    assert (root / "usr/lib/python3/dist-packages/x/__pycache__").exists()
    assert not (root / "usr/share/man/man1").exists()


def test_nothing_outside_the_root_is_touched(tmp_path: Path) -> None:
    outside = tmp_path / "host-docs"
    write(outside / "precious/README")
    root = tmp_path / "root"
    (root / "usr/share").mkdir(parents=True)
    (root / "usr/share/doc").symlink_to(outside)  # a hostile root: the whole doc dir points out
    (root / "var").mkdir()
    (root / "var/log").symlink_to(outside)
    write(root / "usr/share/man/x/link-target-check")
    (root / "usr/share/man/escape").symlink_to("../../../../../../" + str(outside).lstrip("/"))
    slim(root)
    assert (outside / "precious/README").read_text() == "x" * 100
    assert not (root / "usr/share/man/escape").is_symlink()  # dangling inside the root: removed


def test_bad_options_are_refused_before_any_change(root: Path) -> None:
    before = tree_size(root)
    with pytest.raises(SlimError, match=r"invalid locale name '\.\./etc'"):
        slim(root, SlimOptions(keep_locales=("../etc",)))
    assert tree_size(root) == before


@pytest.mark.e2e
def test_slim_debian_root_still_works(bookworm_root: ParentRoot, tmp_path: Path) -> None:
    sizes = {}
    for name, options in (("kiln", SlimOptions()), ("debian", SlimOptions.debian_slim())):
        copy = tmp_path / name
        run(["cp", "-a", "--reflink=auto", str(bookworm_root.rootfs), str(copy)])
        report = slim(copy, options)
        sizes[name] = report
        print(f"{name} slim: {report.size_before / 1e6:.1f} MB -> {report.size_after / 1e6:.1f} MB")
    assert sizes["kiln"].size_after <= sizes["debian"].size_after < sizes["debian"].size_before
    root = tmp_path / "kiln"
    assert (root / "usr/share/doc/bash/copyright").exists()
    assert not (root / "usr/share/man/man1").exists()
    script = "dpkg -s bash >/dev/null && bash --version | head -1"
    assert "GNU bash" in run_in_sandbox(root, ["/bin/sh", "-c", script], SandboxOptions(network=False)).stdout
    assert os.access(root / "usr/bin/bash", os.X_OK)
