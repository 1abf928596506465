"""``run_build(BuildRequest)`` is the one entry point: a serialisable request in, a typed result out, and
no hidden global state (two builds in one process, one in a thread of a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from kiln.build import run_build
from kiln.cli.main import build_app
from kiln.models import BuildOptions, BuildRequest, RecipeSource
from kiln.monitor import ListMonitor
from kiln.settings import Settings
from tests.conftest import TEST_CACHE
from tests.documents import create_file_component

REPO = Path(__file__).resolve().parents[2]
RECIPE = """\
name: {name}
version: 1.2.3
parent: debian:bookworm
components:
  - path: {name}.yaml
outputs: [{{type: oci}}]
"""


def request_for(folder: Path, name: str, home: Path, epoch: int | None = None) -> BuildRequest:
    (folder / f"{name}.yaml").write_text(
        create_file_component(f"made by {name}", name=name, path=f"/etc/{name}")
    )
    recipe = folder / f"{name}-recipe.yaml"
    recipe.write_text(RECIPE.format(name=name))
    return BuildRequest(recipe=RecipeSource.read(recipe), data_dir=home, source_date_epoch=epoch,
                        requester="tests")  # fmt: skip


def test_a_request_round_trips_through_json_and_matches_its_schema(tmp_path: Path) -> None:
    request = request_for(tmp_path, "alpha", tmp_path / "home", epoch=1700000000)
    request = request.model_copy(update={"options": BuildOptions(no_cache=True, check_reproducible=True),
                                         "secrets": {"TOKEN": "env:CI_TOKEN"}})  # fmt: skip
    text = request.model_dump_json()
    assert BuildRequest.model_validate_json(text) == request
    result = CliRunner().invoke(build_app(["schema"]), ["schema", "build-request"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    jsonschema.validate(json.loads(text), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**json.loads(text), "source_date_epoch": "soon"}, schema)


def test_out_of_range_epochs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1980-01-01"):
        request_for(tmp_path, "alpha", tmp_path / "home", epoch=-5)


@pytest.mark.e2e
def test_two_builds_in_one_process_share_no_state(tmp_path: Path) -> None:
    settings = Settings(cache_dir=TEST_CACHE, private_namespaces=False)
    environ_before = dict(os.environ)
    alpha = run_build(request_for(tmp_path, "alpha", tmp_path / "home", 1700000000), monitor=ListMonitor(),
                      settings=settings)  # fmt: skip
    beta = run_build(request_for(tmp_path, "beta", tmp_path / "home", 1700000100), monitor=ListMonitor(),
                     settings=settings)  # fmt: skip
    assert dict(os.environ) == environ_before  # nothing travels through the environment
    assert (alpha.image.name, beta.image.name) == ("alpha", "beta")
    assert alpha.product.digest != beta.product.digest
    assert (alpha.product.source_date_epoch, beta.product.source_date_epoch) == (1700000000, 1700000100)
    assert alpha.product.artifact("oci") is not None and alpha.image.digest == alpha.product.digest
    assert [e.kind for e in alpha.product.evidence][-1].startswith("provenance")  # made last
    again = run_build(request_for(tmp_path, "alpha", tmp_path / "home", 1700000000), monitor=ListMonitor(),
                      settings=settings)  # fmt: skip
    assert again.product.digest == alpha.product.digest and again.ran_steps == 0
    assert again.image.build == 2


@pytest.mark.e2e
def test_run_build_in_a_thread_of_a_fresh_process(tmp_path: Path) -> None:
    request = request_for(tmp_path, "gamma", tmp_path / "home", 1700000000)
    script = textwrap.dedent(f"""
        import sys, threading
        from pathlib import Path
        from kiln.build import run_build
        from kiln.models import BuildRequest
        from kiln.monitor import ListMonitor
        from kiln.settings import Settings

        request = BuildRequest.model_validate_json(sys.stdin.read())
        settings = Settings(cache_dir=Path({str(TEST_CACHE)!r}), private_namespaces=False)
        out = {{}}

        def work():
            out["result"] = run_build(request, monitor=ListMonitor(), settings=settings)

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        print(out["result"].product.model_dump_json())
    """)
    done = subprocess.run([sys.executable, "-c", script], input=request.model_dump_json(), text=True,
                          capture_output=True, cwd=REPO, env={"PATH": os.environ["PATH"]},
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    product = json.loads(done.stdout.splitlines()[-1])
    assert product["name"] == "gamma" and product["digest"].startswith("sha256:")
    assert product["source_date_epoch"] == 1700000000
