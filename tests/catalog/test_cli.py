"""`kiln images …` and `kiln builds …` through the real Typer app."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kiln.catalog import Catalog
from kiln.cli.main import build_app
from kiln.errors import KilnError, NotFound
from kiln.monitor import Event, JsonLinesMonitor
from kiln.store import Store
from tests.catalog.conftest import new_image

runner = CliRunner()


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return build_app()


@pytest.fixture
def home(store: Store, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("KILN_DATABASE_URL", raising=False)
    monkeypatch.delenv("KILN_HOME", raising=False)
    return store.home


@pytest.fixture
def filled(home: Path) -> Iterator[dict[str, str]]:
    """A catalog with two builds of web, a failed build with a real log, and nothing else."""
    store = Store.open(home)
    with Catalog.open(store.database_url) as catalog:
        ids: dict[str, str] = {}
        for n in (1, 2):
            log_path = store.log_path(f"web{n}")
            ids[f"web{n}"] = catalog.start_build(
                recipe_name="web",
                recipe_version="1.0.0",
                recipe_path="examples/web.yaml",
                log_path=str(log_path),
            )
            catalog.finish_build(ids[f"web{n}"], new_image("web", "1.0.0"))
        log_path = store.log_path("failed")
        ids["failed"] = catalog.start_build(
            recipe_name="web", recipe_version="1.1.0", recipe_path="examples/web.yaml", log_path=str(log_path)
        )
        monitor = JsonLinesMonitor(log_path)
        with pytest.raises(RuntimeError), monitor.stage("build", "build web@1.1.0"):
            with monitor.stage("step", "install nginx", component="nginx", phase="build", step="install"):
                monitor.emit(Event("output", message="Reading package lists...", component="nginx"))
            with monitor.stage("step", "start", component="nginx", step="start"):
                raise RuntimeError("nginx: [emerg] bind() failed")
        monitor.close()
        catalog.fail_build(ids["failed"], "component nginx, phase build, step start failed")
        yield ids


def invoke(app: typer.Typer, *args: str, home: Path) -> str:
    result = runner.invoke(app, [*args, "--data-dir", str(home)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_empty_catalog_says_how_to_start(app: typer.Typer, home: Path) -> None:
    assert "no images recorded yet" in invoke(app, "images", "list", home=home)
    assert "no builds yet" in invoke(app, "builds", "list", home=home)
    assert json.loads(invoke(app, "images", "list", "--json", home=home)) == []


def test_images_list_and_show(app: typer.Typer, home: Path, filled: dict[str, str]) -> None:
    listed = json.loads(invoke(app, "images", "list", "--json", home=home))
    assert [(i["name"], i["version"], i["build"]) for i in listed] == [
        ("web", "1.0.0", 1),
        ("web", "1.0.0", 2),
    ]
    assert listed[0]["components"][1] == {
        "name": "nginx", "version": "1.2.0", "digest": "sha256:" + "3" * 64, "parameters": {"port": "80"},
    }  # fmt: skip

    human = invoke(app, "images", "list", home=home)
    assert "1.0.0/1" in human and "1.0.0/2" in human and "debian:bookworm" in human

    shown = json.loads(invoke(app, "images", "show", "web@1.0.0/1", "--json", home=home))
    assert shown["build"] == 1 and shown["build_id"] == filled["web1"]
    assert json.loads(invoke(app, "images", "show", "web", "--json", home=home))["build"] == 2

    picked = runner.invoke(app, ["images", "show", "web@1.0.0", "--data-dir", str(home)])
    assert "picked web@1.0.0/2, the newest of 2 builds of web@1.0.0" in " ".join(picked.stderr.split())
    exact = runner.invoke(app, ["images", "show", "web@1.0.0/1", "--data-dir", str(home)])
    assert exact.exit_code == 0 and "picked" not in exact.stderr
    human = invoke(app, "images", "show", "web", home=home)
    for text in ("web@1.0.0/2", "update-os", "port=80", "qcow2", "sbom-spdx", "packages: 211", "117.7 MiB"):
        assert text in human


def test_unknown_image_is_a_clear_error(app: typer.Typer, home: Path, filled: dict[str, str]) -> None:
    result = runner.invoke(app, ["images", "show", "nope", "--data-dir", str(home)])
    assert isinstance(result.exception, NotFound)
    assert result.exception.hint == "recorded images: web"


def test_builds_list_and_show(app: typer.Typer, home: Path, filled: dict[str, str]) -> None:
    listed = json.loads(invoke(app, "builds", "list", "--json", home=home))
    assert [b["id"] for b in listed] == [filled["failed"], filled["web2"], filled["web1"]]
    assert [b["status"] for b in listed] == ["failed", "succeeded", "succeeded"]
    assert listed[1]["image"] == "web@1.0.0/2"

    human = invoke(app, "builds", "list", home=home)
    assert filled["failed"][:12] in human and "failed" in human and "web@1.0.0/1" in human

    shown = json.loads(invoke(app, "builds", "show", filled["failed"][:10], "--json", home=home))
    assert shown["id"] == filled["failed"] and shown["error"].endswith("step start failed")
    human = invoke(app, "builds", "show", filled["failed"], home=home)
    assert "failed" in human and "step start failed" in human


def test_build_log_readable_and_raw(app: typer.Typer, home: Path, filled: dict[str, str]) -> None:
    readable = invoke(app, "builds", "show", filled["failed"], "--log", home=home)
    lines = readable.splitlines()
    assert any("nginx/build/install" in line and "install nginx" in line for line in lines)
    assert any("Reading package lists..." in line for line in lines)
    assert any(
        "nginx/start" in line and "failed: start" in line and "bind() failed" in line for line in lines
    )

    raw = invoke(app, "builds", "show", filled["failed"], "--log", "--json", home=home).splitlines()
    records = [json.loads(line) for line in raw]
    assert records[0]["kind"] == "start" and records[0]["message"] == "build web@1.1.0"
    assert records[-1]["status"] == "failed" and records[-1]["scope"] == "build"


def test_missing_log_is_explained(app: typer.Typer, home: Path, filled: dict[str, str]) -> None:
    Path(Store.open(home).log_path("web1")).unlink(missing_ok=True)
    result = runner.invoke(app, ["builds", "show", filled["web1"], "--log", "--data-dir", str(home)])
    assert isinstance(result.exception, KilnError)
    assert "does not exist" in str(result.exception)


def test_database_url_override(
    app: typer.Typer, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with Catalog.open(url) as catalog:
        build_id = catalog.start_build(recipe_name="x", recipe_version="1.0.0", recipe_path="p", log_path="l")
        catalog.finish_build(build_id, new_image("elsewhere"))
    monkeypatch.setenv("KILN_DATABASE_URL", url)
    assert [i["name"] for i in json.loads(invoke(app, "images", "list", "--json", home=home))] == [
        "elsewhere"
    ]


def test_package_queries_and_lineage(app: typer.Typer, home: Path, filled: dict[str, str]) -> None:
    store = Store.open(home)
    web = json.loads(invoke(app, "images", "show", "web@1.0.0/1", "--json", home=home))
    with Catalog.open(store.database_url) as catalog:
        build_id = catalog.start_build(
            recipe_name="app", recipe_version="2.0.0", recipe_path="p", log_path="l"
        )
        catalog.finish_build(
            build_id,
            new_image("app", "2.0.0", parent="web@1.0.0/1", parent_digest=web["digest"], packages=[]),
        )

    matches = json.loads(
        invoke(app, "images", "list", "--package", "openssl", "--below", "3.0.13", "--json", home=home)
    )
    assert [(m["image"]["name"], m["image"]["build"]) for m in matches] == [("web", 1), ("web", 2)]
    assert {p["name"] for p in matches[0]["packages"]} == {"openssl", "libssl3"}
    human = invoke(app, "images", "list", "--package", "openssl", home=home)
    assert "web@1.0.0/2" in human and "libssl3 3.0.11-1~deb12u2 (source openssl)" in human
    assert "no recorded image" in invoke(
        app, "images", "list", "--package", "openssl", "--below", "1", home=home
    )
    result = runner.invoke(app, ["images", "list", "--below", "1", "--data-dir", str(home)])
    assert isinstance(result.exception, KilnError) and "--below needs --package" in str(result.exception)

    packages = json.loads(invoke(app, "images", "packages", "web@1.0.0/1", "--json", home=home))
    assert packages[0] == {
        "name": "libssl3", "version": "3.0.11-1~deb12u2", "architecture": "amd64",
        "source": "openssl", "source_version": "3.0.11-1~deb12u2",
    }  # fmt: skip
    assert "no packages recorded for app@2.0.0/1" in invoke(app, "images", "packages", "app", home=home)

    shown = json.loads(invoke(app, "images", "show", "app", "--json", home=home))
    assert shown["lineage"] == ["web@1.0.0/1", "debian:bookworm"] and shown["children"] == []
    assert json.loads(invoke(app, "images", "show", "web@1.0.0/1", "--json", home=home))["children"] == [
        "app@2.0.0/1"
    ]
    human = invoke(app, "images", "show", "app", home=home)
    assert "app@2.0.0/1 ← web@1.0.0/1 ← debian:bookworm" in human
    assert "critical: 0, high: 2" in human  # evidence summary
    assert "app@2.0.0/1" in invoke(app, "images", "show", "web@1.0.0/1", home=home)  # "built on it"
