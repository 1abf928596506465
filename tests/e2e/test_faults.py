"""Faults leave nothing behind: a build killed with SIGKILL takes every process it started with it
(mmdebstrap, step sandboxes), the next ``kiln`` command reclaims its scratch and unrecorded image
directory, and a full disk gives a clear error with a consistent catalog."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiln.sandbox.overlay import mounts_under
from tests.e2e.conftest import KILN, kiln
from tests.e2e.test_build_failure import _step_started, processes_using

pytestmark = pytest.mark.e2e

TEST_SLEEPS = """\
name: waits-in-test
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Marker
        action: CreateFile
        inputs:
          - path: /etc/kiln-fault
            content: here
  - name: test
    steps:
      - name: Wait
        action: ExecuteBash
        inputs:
          commands: ["sleep 600"]
"""

RECIPE = """\
name: faulty
version: 0.1.0
parent: {parent}
components:
  - path: waits-in-test.yaml
"""


def _start(recipe: Path, home: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(KILN), "build", str(recipe)], env={**os.environ, "KILN_HOME": str(home)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _wait_for(proc: subprocess.Popen[bytes], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert proc.poll() is None, f"the build ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _gone_within(home: Path, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while processes_using(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    return processes_using(home)


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "waits-in-test.yaml").write_text(TEST_SLEEPS)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(parent="debian:bookworm"))
    yield recipe


def test_sigkill_during_tests_then_the_next_command_reclaims(faulty: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _start(faulty, home)
    try:
        _wait_for(proc, lambda: _step_started(home, "Wait"), "the test step")
        [output] = (home / "images/faulty").iterdir()  # written, not yet recorded
        assert (output / "oci/index.json").is_file()
        proc.kill()
        proc.wait()
        assert _gone_within(home, 10) == []  # the test instance's sandbox and its sleep died too
    finally:
        proc.kill()
    [scratch, owner] = sorted((home / "tmp").iterdir())  # left behind
    assert scratch.name.startswith("build-") and owner.name == scratch.name + ".owner"
    builds = kiln("builds", "list", "--json", home=home).json()  # any command reclaims
    assert [b["status"] for b in builds] == ["failed"] and "interrupted" in builds[0]["error"]
    assert list((home / "tmp").iterdir()) == []
    assert not output.exists()
    assert mounts_under(home) == []
    report = kiln("gc", "--json", home=home).json()
    assert report["reclaimed"] == []  # already done


def test_sigkill_during_the_bootstrap_kills_mmdebstrap(tmp_path: Path) -> None:
    """A parent nobody built yet: the build is killed while mmdebstrap runs."""
    (tmp_path / "waits-in-test.yaml").write_text(TEST_SLEEPS)
    recipe = tmp_path / "recipe.yaml"
    # Never cached: every run of this test kills its bootstrap before it completes.
    recipe.write_text(RECIPE.format(parent="{image: 'debian:bookworm', packages: [hostname, less]}"))
    home = tmp_path / "home"
    proc = _start(recipe, home)

    def bootstrapping() -> bool:
        for pid in processes_using(home):
            with contextlib.suppress(OSError):
                if b"mmdebstrap" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return True
        return False

    try:
        _wait_for(proc, bootstrapping, "mmdebstrap")
        proc.kill()
        proc.wait()
        assert _gone_within(home, 10) == []
    finally:
        proc.kill()
    dry = kiln("gc", "--dry-run", "--json", home=home).json()
    names = sorted(Path(item["path"]).name.split("-")[0] for item in dry["reclaimed"])
    assert "build" in names and len(names) >= 2  # the build's scratch and its bootstrap's
    assert {item["kind"] for item in dry["reclaimed"]} == {"scratch"}
    assert len(list((home / "tmp").iterdir())) == 2 * len(names)  # a dry run removes nothing
    report = kiln("gc", "--json", home=home).json()
    assert report["reclaimed"] == dry["reclaimed"] and report["freed"] == dry["freed"]
    assert list((home / "tmp").iterdir()) == []


def test_a_live_builds_scratch_is_never_reclaimed(faulty: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _start(faulty, home)
    try:
        _wait_for(proc, lambda: _step_started(home, "Wait"), "the test step")
        report = kiln("gc", "--json", home=home).json()
        assert report["reclaimed"] == []
        assert proc.poll() is None and any((home / "tmp").iterdir())
        assert any((home / "images/faulty").iterdir())
    finally:
        proc.kill()
        proc.wait()


def test_a_full_disk_fails_clearly_and_keeps_the_catalog(tmp_path: Path) -> None:
    """The data dir on a 24 MiB file system: the OCI output cannot fit."""
    (tmp_path / "waits-in-test.yaml").write_text(TEST_SLEEPS.split("  - name: test")[0])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(parent="debian:bookworm"))
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "kiln-full", str(home)], check=True)
    try:
        result = kiln("build", str(recipe), home=home, check=False)
        assert result.returncode == 1, result.stderr
        err = " ".join(result.stderr.split())
        assert "Traceback" not in result.stderr
        assert "no space left on device writing" in err and str(home) in err
        assert "free of 24.0 MiB" in err and "needs about" in err
        builds = kiln("builds", "list", "--json", home=home).json()
        assert [b["status"] for b in builds] == ["failed"]
        assert "no space left" in builds[0]["error"]
        assert kiln("images", "list", "--json", home=home).json() == []
        assert list((home / "tmp").iterdir()) == []
        assert not any((home / "images").rglob("*.tar.gz")) and not any((home / "images").rglob("blobs"))
    finally:
        subprocess.run(["umount", "--lazy", str(home)], check=False)
