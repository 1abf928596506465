"""Pipelines for real: ``kiln daemon --once`` builds a published recipe's image and, after it, the
child pipeline on ``kiln:PARENT@1.x``; a new version of a registry component both use rebuilds the
parent first and then the child once, on the parent's new version (real builds, cached parent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import MARK_COMPONENT, KilnRun, fresh_layer_cache, kiln

pytestmark = pytest.mark.e2e

BASE = """\
name: pl-base
version: 1.0.0
parent:
  image: debian:bookworm
  packages: [ca-certificates]
components:
  - name: mark@1.x
    parameters: {Name: pl-base, Text: base}
"""
APP = """\
name: pl-app
version: 1.0.0
parent: {image: 'kiln:pl-base@1.x'}
components:
  - name: mark@1.x
    parameters: {Name: pl-app, Text: app}
"""


def test_a_new_parent_version_cascades_to_the_child_pipeline(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"KILN_CACHE_DIR": str(fresh_layer_cache(home)), "KILN_ACCEL": "tcg"}

    def run(*args: str, check: bool = True) -> KilnRun:
        return kiln(*args, home=home, env=env, check=check)

    def history(name: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = run("pipelines", "history", name, "--json").json()
        return runs

    files = tmp_path / "files"
    (files / "pipelines").mkdir(parents=True)
    (files / "mark.yaml").write_text(MARK_COMPONENT.replace("schemaVersion", "version: 1.0.0\nschemaVersion"))
    run("components", "publish", str(files / "mark.yaml"))
    (files / "base.yaml").write_text(BASE)
    run("recipes", "publish", str(files / "base.yaml"))
    (files / "app.yaml").write_text(APP)
    (files / "pipelines/base.yaml").write_text(
        "name: pl-base\nrecipe: pl-base@1.x\ntriggers: [component, manual]\n"
    )
    (files / "pipelines/app.yaml").write_text(
        "name: pl-app\nrecipe: ../app.yaml\ntriggers: [parent, component, manual]\n"
    )
    applied = run("pipelines", "apply", str(files / "pipelines"), "--json").json()
    assert applied == [{"change": "created", "pipeline": n} for n in ("pl-app", "pl-base")]

    run("pipelines", "run", "pl-base")
    first = run("daemon", "--once", "--log-format", "json")
    assert first.returncode == 0, first.stderr
    [base1] = history("pl-base")
    [app1] = history("pl-app")
    assert base1["status"] == app1["status"] == "succeeded", (base1, app1)
    assert app1["trigger"]["type"] == "parent"
    assert app1["trigger"]["cause"].startswith("new parent image pl-base@1.0.0/1 (sha256:")

    # A new version of the component both recipes take in 1.x: the parent first, then the child once.
    (files / "mark.yaml").write_text(MARK_COMPONENT.replace("schemaVersion", "version: 1.1.0\nschemaVersion"))
    run("components", "publish", str(files / "mark.yaml"))
    assert run("daemon", "--once").returncode == 0
    base2, _ = history("pl-base")
    app2, _ = history("pl-app")
    assert base2["status"] == app2["status"] == "succeeded", (base2, app2)
    assert base2["trigger"] == {
        "type": "component",
        "cause": "new version of component mark in mark@1.x: 1.0.0 -> 1.1.0",
    }
    assert app2["trigger"]["type"] == "component"
    assert app2["trigger"]["cause"].startswith("new version of component mark in mark@1.x: 1.0.0 -> 1.1.0; ")
    assert "; new parent image pl-base@1.0.0/2 (sha256:" in app2["trigger"]["cause"]  # joined: one build
    images = {(i["name"], i["build"]): i for i in run("images", "list", "--json").json()}
    assert images[("pl-app", 2)]["parent_digest"] == images[("pl-base", 2)]["digest"]
    assert images[("pl-app", 1)]["parent_digest"] == images[("pl-base", 1)]["digest"]

    # Every run transition was recorded as an event (kiln events, CloudEvents JSON lines).
    lines = run("events", "--type", "pipeline.*", "--json", "--limit", "100").stdout.splitlines()
    types = [json.loads(line)["type"].removeprefix("dev.kiln.pipeline.") for line in lines]
    assert types.count("run-succeeded") == 4 and types.count("run-failed") == 0
