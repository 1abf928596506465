"""A failing component fails the build cleanly: clear message, exit 1, nothing published or left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kiln.rootfs.parentcache import current_dir
from kiln.sandbox.overlay import mounts_under
from tests.conftest import TEST_CACHE
from tests.e2e.conftest import KILN, kiln

pytestmark = pytest.mark.e2e

FAILING = """\
name: breaks
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Prepare
        action: ExecuteBash
        inputs:
          commands:
            - echo preparing > /etc/breaks-was-here
      - name: Explode
        action: ExecuteBash
        inputs:
          commands:
            - echo "about to fail" >&2
            - sleep 300 &
            - exit 3
"""

RECIPE = """\
name: broken
version: 0.1.0
parent: debian:bookworm
components:
  - path: breaks.yaml
"""


def processes_using(home: Path) -> list[int]:
    """Processes whose command line mentions ``home`` (sandboxes and steps of that data dir)."""
    found = []
    needle = str(home).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("keep", [False, True])
def test_failing_step_fails_the_build_cleanly(tmp_path: Path, keep: bool) -> None:
    (tmp_path / "breaks.yaml").write_text(FAILING)
    (tmp_path / "broken.yaml").write_text(RECIPE)
    home = tmp_path / "home"
    args = ["build", str(tmp_path / "broken.yaml"), *(["--keep-rootfs", "--json"] if keep else [])]
    # Mounts in the host namespace: cleanup must not rely on the private namespace dropping them.
    result = kiln(*args, home=home, check=False, env={"KILN_MOUNT_NAMESPACE": "host"})
    assert result.returncode == 1, result.stderr
    err = " ".join(result.stderr.split())
    assert "recipe broken" in err and "component breaks" in err and "phase build" in err
    assert "Explode" in err and "about to fail" in err
    # where: the component's place in the recipe, the step's file:line, the exit code
    assert "component breaks (1 of 1 in the recipe): phase build: step Explode" in err
    assert f"ExecuteBash at {tmp_path / 'breaks.yaml'}:11), exit code 3" in err
    assert kiln("images", "list", "--json", home=home).json() == []
    builds = kiln("builds", "list", "--json", home=home).json()
    assert [b["status"] for b in builds] == ["failed"]
    assert mounts_under(home) == []
    assert list((home / "tmp").iterdir()) == []
    assert not (home / "images" / "broken").exists() or not any((home / "images" / "broken").iterdir())
    assert processes_using(home) == []
    kept = home / "kept"
    if keep:
        roots = list(kept.iterdir())
        assert len(roots) == 1 and (roots[0] / "etc/breaks-was-here").is_file()
        after_error = result.stderr[result.stderr.index("error:") :]
        assert str(roots[0]) in " ".join(after_error.split())  # next to the error, not amid the output
        report = json.loads(result.stdout)  # --json is printed when the build fails too
        assert report["status"] == "failed" and report["build_id"] == builds[0]["id"]
        assert report["kept_rootfs"] == str(roots[0]) and "step Explode" in report["error"]
    else:
        assert not kept.exists()
    assert Path(builds[0]["log_path"]).exists()


FAILING_TEST = """\
name: checks-motd
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: WriteMotd
        action: CreateFile
        inputs:
          - path: /etc/motd
            content: welcome
  - name: test
    steps:
      - name: MotdSaysHello
        action: ExecuteBash
        inputs:
          commands:
            - grep -q hello /etc/motd
"""


def test_failing_test_phase_on_fresh_instance_records_nothing(tmp_path: Path) -> None:
    (tmp_path / "checks-motd.yaml").write_text(FAILING_TEST)
    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("breaks.yaml", "checks-motd.yaml"))
    home = tmp_path / "home"
    result = kiln("build", str(tmp_path / "recipe.yaml"), home=home, check=False)
    assert result.returncode == 1
    err = " ".join(result.stderr.split())
    assert "phase test (fresh container instance)" in err and "MotdSaysHello" in err
    assert kiln("images", "list", "--json", home=home).json() == []
    assert not any((home / "images").rglob("index.json"))
    assert mounts_under(home) == [] and list((home / "tmp").iterdir()) == []


SLOW = """\
name: slow
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: Wait
        action: ExecuteBash
        inputs:
          commands:
            - touch /etc/slow-started
            - sleep 600
"""


def _as_from_a_terminal() -> None:
    """A shell running the suite in the background makes children ignore SIGINT; a terminal does not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_cleans_up(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("breaks.yaml", "slow.yaml"))
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [str(KILN), "build", str(tmp_path / "recipe.yaml")],
        env={**os.environ, "KILN_HOME": str(home), "KILN_MOUNT_NAMESPACE": "host"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_from_a_terminal,
    )
    try:
        deadline = time.monotonic() + 300
        while not any(p.name == "slow-started" for p in (home / "tmp").rglob("slow-started")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # never leave a build holding the shared cache's locks
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    builds = kiln("builds", "list", "--json", home=home).json()
    assert [(b["status"], b["error"]) for b in builds] == [("failed", "interrupted")]
    assert mounts_under(home) == [] and list((home / "tmp").iterdir()) == []
    assert processes_using(home) == []


def _step_started(home: Path, step: str) -> bool:
    for log in (home / "logs").glob("*.jsonl"):
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if (
                event.get("kind") == "start"
                and event.get("scope") == "step"
                and step in event.get("message", "")
            ):
                return True
    return False


def test_sigkill_leaves_no_mounts(tmp_path: Path) -> None:
    """Even a build killed with SIGKILL leaves no mount behind: it runs in its own mount namespace."""
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("breaks.yaml", "slow.yaml"))
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [str(KILN), "build", str(tmp_path / "recipe.yaml")],
        env={**os.environ, "KILN_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    # The overlay (and the memory scratch space its upper dir is in) lives in the build's private
    # mount namespace, invisible from here: the build log says when the slow step runs.
    while not processes_using(home / "tmp") or not _step_started(home, "slow: build/Wait"):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while processes_using(home) and time.monotonic() < deadline:  # the sandbox dies with its parent
        time.sleep(0.2)
    assert processes_using(home) == []
    assert mounts_under(home) == []
    # The next build finds the interrupted one and records it as failed.
    builds = kiln("builds", "list", "--json", home=home).json()
    assert [b["status"] for b in builds] == ["failed"]


def test_a_new_parent_is_cached_even_when_a_later_component_fails(tmp_path: Path) -> None:
    """A new parent stays in the build's memory while its copy into the cache overlaps the components:
    a failing component still leaves a complete cache entry, and no scratch, mount or process."""
    cache = tmp_path / "cache"
    (cache / "debs").mkdir(parents=True)
    for deb in (TEST_CACHE / "debs").glob("*.deb"):  # no downloads: the shared cache's .debs
        os.link(deb, cache / "debs" / deb.name)
    (tmp_path / "breaks.yaml").write_text(FAILING)
    (tmp_path / "broken.yaml").write_text(RECIPE)
    home = tmp_path / "home"
    env = {"KILN_CACHE_DIR": str(cache), "KILN_MOUNT_NAMESPACE": "host"}
    failed = kiln("build", str(tmp_path / "broken.yaml"), home=home, check=False, env=env)
    assert failed.returncode == 1, failed.stderr
    [entry] = (cache / "parents").iterdir()
    version = current_dir(entry)
    assert version is not None and json.loads((version / "parent.json").read_text())["debs"]
    assert (version / "rootfs/usr/bin/apt-get").is_file() and not (version / "ram").exists()
    assert mounts_under(home) == [] and list((home / "tmp").iterdir()) == []
    assert processes_using(home) == []
    (tmp_path / "ok.yaml").write_text(RECIPE.replace("breaks.yaml", "motd.yaml"))
    (tmp_path / "motd.yaml").write_text(FAILING_TEST.split("  - name: test")[0])
    kiln("build", str(tmp_path / "ok.yaml"), home=home, env=env)
    [log] = [
        b["log_path"]
        for b in kiln("builds", "list", "--json", home=home).json()
        if b["status"] == "succeeded"
    ]
    events = [json.loads(line) for line in Path(log).read_text().splitlines()]
    parent = [e for e in events if e.get("scope") == "parent" and e["kind"] == "end"]
    assert parent[0]["status"] == "cached"
