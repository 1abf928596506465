"""Safe resolution inside a root: ``..``, absolute and relative links never leave it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.sandbox.paths import PathEscapeError, inside_path, resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "usr/lib").mkdir(parents=True)
    (r / "etc/hosts").write_text("image hosts\n")
    (r / "abs").symlink_to("/etc")  # absolute: must mean <root>/etc
    (r / "rel").symlink_to("../../../../../../etc")  # climbs: stops at <root>
    (r / "usr/lib/up").symlink_to("../../etc/hosts")
    (r / "loop1").symlink_to("loop2")
    (r / "loop2").symlink_to("loop1")
    (r / "proc").mkdir()
    return r


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/hosts", "etc/hosts"),
        ("etc/hosts", "etc/hosts"),
        ("../../../../etc/kiln-escape", "etc/kiln-escape"),
        ("/abs/x", "etc/x"),
        ("/rel/passwd", "etc/passwd"),
        ("/usr/lib/up", "etc/hosts"),
        ("/usr/./lib/../lib/up", "etc/hosts"),
        ("/abs/../../..", ""),
        ("/missing/dir/file", "missing/dir/file"),
        ("/proc/self/root/etc/shadow", "proc/self/root/etc/shadow"),
    ],
)
def test_resolution_stays_inside(root: Path, path: str, expected: str) -> None:
    want = root.joinpath(*expected.split("/")) if expected else root
    assert resolve_in_root(root, path) == want


def test_last_component_kept_when_asked(root: Path) -> None:
    assert resolve_in_root(root, "/abs", follow_last=False) == root / "abs"
    assert resolve_in_root(root, "/abs/", follow_last=False) == root / "abs"
    assert resolve_in_root(root, "/abs") == root / "etc"


def test_symlink_loop_is_an_error(root: Path) -> None:
    with pytest.raises(PathEscapeError, match="too many levels"):
        resolve_in_root(root, "/loop1/x")


def test_nul_byte_rejected(root: Path) -> None:
    with pytest.raises(PathEscapeError):
        resolve_in_root(root, "/etc/\x00x")


def test_inside_path_round_trip(root: Path) -> None:
    assert inside_path(root, resolve_in_root(root, "/abs/hosts")) == "/etc/hosts"
    assert inside_path(root, root) == "/"


def test_host_root_resolves_normally(tmp_path: Path) -> None:
    assert resolve_in_root(Path("/"), str(tmp_path / "a/../b")) == Path(os.path.realpath(tmp_path)) / "b"


_parts = st.sampled_from(["..", ".", "etc", "abs", "rel", "usr", "lib", "up", "x", "", "loopy"])


@settings(max_examples=150, deadline=None)
@given(st.lists(_parts, max_size=12), st.booleans(), st.booleans())
def test_property_never_escapes(tmp_path_factory: pytest.TempPathFactory, parts: list[str], absolute: bool,
                                follow: bool) -> None:  # fmt: skip
    root = tmp_path_factory.getbasetemp() / "prop-root"
    if not root.exists():
        (root / "etc").mkdir(parents=True)
        (root / "usr/lib").mkdir(parents=True)
        (root / "abs").symlink_to("/")
        (root / "rel").symlink_to("../../..")
        (root / "usr/lib/up").symlink_to("../../../../abs/rel")
    path = ("/" if absolute else "") + "/".join(parts)
    resolved = resolve_in_root(root, path, follow_last=follow)
    assert resolved == root or resolved.is_relative_to(root)
    assert ".." not in resolved.relative_to(root).parts
