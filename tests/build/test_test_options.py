"""The request's say over the test stage (a pipeline's ``tests``; ``kiln build --no-tests`` /
``--test-timeout``), with real builds on the cached bookworm parent and a container test instance:

- ``skip_tests``: the image is recorded untested, the log, the provenance and the catalog's evidence
  summary name who turned the tests off, and a channel requiring passed tests refuses the image;
- ``test_timeout``: a test that outlives the bound is killed with its process tree, nothing stays
  mounted, and the build fails naming the bound; a test within it passes as before.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kiln.build import run_build
from kiln.catalog import Catalog
from kiln.cli.main import build_app
from kiln.errors import KilnError
from kiln.models import BuildOptions, BuildRequest, RecipeSource
from kiln.monitor import ListMonitor
from kiln.promotion.policy import load_policy
from kiln.promotion.rules import evaluate
from kiln.settings import Settings
from kiln.store import Store
from tests.conftest import TEST_CACHE

pytestmark = pytest.mark.e2e

COMPONENT = """\
name: waits
schemaVersion: 1.0
parameters:
  - Seconds: {type: string, default: "0"}
phases:
  - name: build
    steps:
      - name: Write
        action: CreateFile
        inputs:
          - path: /etc/waits
            content: built
  - name: test
    steps:
      - name: Wait
        action: ExecuteBash
        inputs:
          commands:
            - "test -f /etc/waits"
            - "sleep {{ Seconds }} & sleep {{ Seconds }}; wait"
"""
RECIPE = """\
name: waits
version: 1.0.0
parent: debian:bookworm
components:
  - path: waits.yaml
    parameters: {{Seconds: "{seconds}"}}
outputs: [oci]
settings: {{network: false}}
"""
REQUESTER = "pipeline waits run 0123 (schedule: 2026-12-02 04:00 UTC)"
POLICY = "version: 1\nchannels: [dev]\npolicies:\n  dev:\n    tests_passed: true\n"


def build(folder: Path, seconds: str, options: BuildOptions) -> BuildRequest:
    (folder / "waits.yaml").write_text(COMPONENT)
    recipe = folder / "waits.recipe.yaml"
    recipe.write_text(RECIPE.format(seconds=seconds))
    return BuildRequest(recipe=RecipeSource.read(recipe), data_dir=folder / "home", options=options,
                        source_date_epoch=1700000000, requester=REQUESTER)  # fmt: skip


def processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line]


@pytest.fixture
def settings() -> Settings:
    return Settings(cache_dir=TEST_CACHE, private_namespaces=False)


def test_skipped_tests_are_recorded_and_refused_by_a_tests_passed_channel(
    tmp_path: Path, settings: Settings
) -> None:
    monitor = ListMonitor()
    result = run_build(
        build(tmp_path, "0", BuildOptions(skip_tests=True)), monitor=monitor, settings=settings
    )
    assert result.product.tested_on == []
    said = [e for e in monitor.events if e.scope == "test"]
    assert [(e.kind, e.status) for e in said] == [("warning", "skipped")]  # no test stage ran
    assert said[0].message.startswith(f"test phases skipped: tests disabled by {REQUESTER}")
    provenance = next(e for e in result.product.evidence if e.kind.startswith("provenance"))
    statement = json.loads(Path(provenance.path).read_text())
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert external["tests"] == {"enabled": False, "skipped": f"tests disabled by {REQUESTER}"}
    with Catalog.open(Store.open(tmp_path / "home", settings).database_url) as catalog:
        image = catalog.get_image(result.image.ref)
        recorded = next(e for e in image.evidence if e.kind.startswith("provenance"))
        assert recorded.summary["tests"] == f"skipped (tests disabled by {REQUESTER})"  # kiln images show
        (tmp_path / "policy.yaml").write_text(POLICY)
        rules = evaluate(catalog, image, "dev", load_policy(tmp_path / "policy.yaml"), datetime.now(UTC))
    [rule] = [r for r in rules if r.rule == "tests_passed"]
    assert not rule.passed
    assert rule.detail == f"the build skipped its test phases (tests disabled by {REQUESTER}): untested"
    shown = CliRunner().invoke(
        build_app(["images"]), ["images", "show", result.image.ref, "--data-dir", str(tmp_path / "home")],
        env={"COLUMNS": "400"},
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert f"tests: skipped (tests disabled by {REQUESTER})" in " ".join(shown.output.split())


def test_a_test_stage_past_its_timeout_is_killed_and_fails_the_build(
    tmp_path: Path, settings: Settings
) -> None:
    token = f"{1000 + uuid.uuid4().int % 8000}.{uuid.uuid4().int % 1000:03d}"  # a sleep only this test runs
    monitor = ListMonitor()
    started = time.monotonic()
    with pytest.raises(KilnError) as failed:
        run_build(build(tmp_path, token, BuildOptions(test_timeout=3)), monitor=monitor, settings=settings)
    message = failed.value.message
    assert message == (
        "recipe waits: test stage on a fresh container instance exceeded the test timeout of 3s during "
        "component waits: its processes were killed and the instance torn down"
    )
    test_stage = next(e for e in monitor.events if e.kind == "end" and e.scope == "test")
    assert test_stage.status == "failed" and test_stage.duration is not None
    assert 3 <= test_stage.duration < 20, test_stage.duration  # killed at the bound, not after the sleep
    assert time.monotonic() - started < float(token) / 10
    assert processes_with(f"sleep {token}") == []
    assert mounts_under(tmp_path) == []
    with Catalog.open(Store.open(tmp_path / "home", settings).database_url) as catalog:
        [recorded] = catalog.list_builds(5)
        assert (recorded.status, recorded.error) == ("failed", message)
        assert catalog.list_images("waits") == []
    # within its bound the same test passes and the bound is in the provenance
    result = run_build(build(tmp_path, "0.1", BuildOptions(test_timeout=300)), monitor=ListMonitor(),
                       settings=settings)  # fmt: skip
    assert result.product.tested_on == ["container"]
    provenance = next(e for e in result.product.evidence if e.kind.startswith("provenance"))
    external = json.loads(Path(provenance.path).read_text())["predicate"]["buildDefinition"][
        "externalParameters"
    ]
    assert external["tests"] == {"enabled": True, "timeoutSeconds": 300}
    assert os.environ.get("KILN_TEST_TIMEOUT") is None  # nothing travels through the environment
