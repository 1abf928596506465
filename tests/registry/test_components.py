"""The component registry on SQLite and PostgreSQL: publish (immutable), list, deprecate, resolve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kiln.catalog import Catalog
from kiln.errors import NotFound, UsageError, ValidationFailed
from kiln.recipes.loader import load_recipe
from kiln.registry.components import (
    PublishConflict,
    builtin_documents,
    deprecate_component,
    get_component,
    list_components,
    publish_component,
    resolve_component,
)
from kiln.registry.resolver import CatalogRegistry

WHO = "tester@host"


@pytest.fixture
def nginx(catalog: Catalog, write_doc: Callable[..., Path]) -> Catalog:
    """nginx 1.0.0, 1.2.0, 1.2.3, 1.10.0 and 2.0.0 (deprecated) published."""
    for version in ("1.2.3", "1.0.0", "1.10.0", "1.2.0", "2.0.0"):
        publish_component(catalog, write_doc("nginx", marker=version), version=version, who=WHO)
    deprecate_component(catalog, "nginx", "2.0.0", reason="breaks TLS 1.2 clients", who=WHO)
    return catalog


# The semantics table: reference -> (version chosen, deprecated warning expected)
RESOLVES = [
    ("1.2.3", "1.2.3", False),
    ("1.2.x", "1.2.3", False),
    ("1.x", "1.10.0", False),
    ("latest", "1.10.0", False),  # wildcards skip a deprecated version when an active one matches
    ("2.x", "2.0.0", True),  # ... and use it, warned, when nothing else matches
    ("2.0.0", "2.0.0", True),  # pinned exactly: usable, warned
]


@pytest.mark.parametrize(("pattern", "version", "deprecated"), RESOLVES)
def test_resolution_table(nginx: Catalog, pattern: str, version: str, deprecated: bool) -> None:
    chosen = resolve_component(nginx, "nginx", pattern)
    assert chosen.version == version
    assert (chosen.deprecation_reason == "breaks TLS 1.2 clients") is deprecated
    assert chosen.digest == get_component(nginx, "nginx", version).component.digest


def test_no_matching_version_lists_the_available_ones(nginx: Catalog) -> None:
    with pytest.raises(NotFound, match=r"no published version of component nginx matches 1.3.x") as missing:
        resolve_component(nginx, "nginx", "1.3.x")
    assert missing.value.hint == (
        "available versions of nginx: 1.0.0, 1.2.0, 1.2.3, 1.10.0, 2.0.0 (deprecated)"
    )
    with pytest.raises(NotFound, match="component apache") as unknown:
        resolve_component(nginx, "apache", "1.x")
    assert "nginx" in (unknown.value.hint or "") and "update-os" in (unknown.value.hint or "")


def test_invalid_pattern_is_a_usage_error(nginx: Catalog) -> None:
    with pytest.raises(UsageError, match="trailing positions"):
        resolve_component(nginx, "nginx", "1.x.2")


def test_published_versions_are_immutable(catalog: Catalog, write_doc: Callable[..., Path]) -> None:
    first = publish_component(catalog, write_doc("nginx", "1.0.0"), who=WHO)
    assert first.created and first.version == "1.0.0"
    again = publish_component(catalog, write_doc("nginx", "1.0.0"), who="someone-else")
    assert not again.created and again.digest == first.digest  # same bytes: unchanged, not an error
    with pytest.raises(PublishConflict, match=r"nginx@1.0.0 is already published with other content"):
        publish_component(catalog, write_doc("nginx", "1.0.0", marker="changed"), who=WHO)
    (stored,) = list_components(catalog, "nginx")
    assert stored.digest == first.digest and stored.published_by == WHO
    assert publish_component(catalog, write_doc("nginx", "1.0.1", marker="changed"), who=WHO).created


def test_version_from_document_or_option(catalog: Catalog, write_doc: Callable[..., Path]) -> None:
    assert publish_component(catalog, write_doc("a"), version="0.1.0", who=WHO).version == "0.1.0"
    assert publish_component(catalog, write_doc("b", "0.2.0"), version="0.2.0", who=WHO).version == "0.2.0"
    with pytest.raises(UsageError, match=r"the document says version 0.3.0 but --version is 0.4.0"):
        publish_component(catalog, write_doc("c", "0.3.0"), version="0.4.0", who=WHO)
    with pytest.raises(UsageError, match="no `version:` and no --version"):
        publish_component(catalog, write_doc("d"), who=WHO)
    with pytest.raises(UsageError, match="not a semantic version"):
        publish_component(catalog, write_doc("e"), version="1.x", who=WHO)
    assert [c.name for c in list_components(catalog) if not c.builtin] == ["a", "b"]


def test_invalid_documents_are_refused_with_file_and_line(catalog: Catalog, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
                   "      - name: X\n        action: NoSuchAction\n")  # fmt: skip
    with pytest.raises(ValidationFailed) as refused:
        publish_component(catalog, bad, version="1.0.0", who=WHO)
    assert any(i.line == 7 and "NoSuchAction" in i.message for i in refused.value.issues)
    caller = tmp_path / "caller.yaml"
    caller.write_text("name: caller\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
                      "      - name: Call\n        action: ExecuteDocument\n        inputs:\n"
                      "          document: helper.yaml\n")  # fmt: skip
    (tmp_path / "helper.yaml").write_text("name: helper\nschemaVersion: 1.0\nphases:\n  - name: build\n"
                                          "    steps:\n      - name: X\n        action: ExecuteBash\n"
                                          "        inputs:\n          commands: [\"true\"]\n")  # fmt: skip
    with pytest.raises(ValidationFailed, match="must stand alone"):
        publish_component(catalog, caller, version="1.0.0", who=WHO)
    with pytest.raises(ValidationFailed, match="cannot be a registry name"):
        publish_component(catalog, _named(tmp_path, "Has Spaces"), version="1.0.0", who=WHO)
    assert not [c for c in list_components(catalog) if not c.builtin]


def _named(folder: Path, name: str) -> Path:
    path = folder / "named.yaml"
    path.write_text(f"name: {name}\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n"
                    "      - name: X\n        action: ExecuteBash\n        inputs:\n          commands: [\"true\"]\n")  # fmt: skip
    return path


def test_builtins_are_seeded_once_as_versions(catalog: Catalog) -> None:
    listed = [c for c in list_components(catalog) if c.builtin]
    assert {c.name for c in listed} >= {"update-os", "hardening/sshd"}
    assert {c.name for c in listed} == {b.name for b in builtin_documents()}
    assert list_components(catalog) == list_components(catalog)  # idempotent: nothing seeded twice
    chosen = resolve_component(catalog, "update-os", "1.x")
    assert (chosen.version, chosen.digest) == ("1.0.0", next(b.digest for b in builtin_documents()
                                                               if b.name == "update-os"))  # fmt: skip


def test_deprecate(nginx: Catalog) -> None:
    record = deprecate_component(nginx, "nginx", "1.0.0", reason="old", who=WHO)
    assert (record.state, record.deprecation_reason, record.deprecated_by) == ("deprecated", "old", WHO)
    assert deprecate_component(nginx, "nginx", "1.0.0", reason="other", who="x").deprecation_reason == "old"
    with pytest.raises(NotFound, match=r"no component nginx@9.9.9") as missing:
        deprecate_component(nginx, "nginx", "9.9.9", reason="r", who=WHO)
    assert "1.10.0" in (missing.value.hint or "")
    with pytest.raises(UsageError, match="needs a reason"):
        deprecate_component(nginx, "nginx", "1.2.0", reason=" ", who=WHO)


RECIPE = """\
name: web
version: 1.0.0
parent: debian:bookworm
components:
  - update-os@1.x
  - name: nginx@{pattern}
"""


def test_recipe_references_resolve_and_warn(nginx: Catalog, tmp_path: Path) -> None:
    registry = CatalogRegistry(lambda: nginx, tmp_path / "documents")
    recipe = tmp_path / "web.yaml"
    recipe.write_text(RECIPE.format(pattern="1.2.x"))
    loaded = load_recipe(recipe, registry=registry)
    assert [(c.label, c.version) for c in loaded.components] == [("update-os", "1.0.0"), ("nginx", "1.2.3")]
    assert loaded.components[1].document.digest == resolve_component(nginx, "nginx", "1.2.3").digest
    assert not loaded.warnings
    recipe.write_text(RECIPE.format(pattern="2.0.0"))
    (warning,) = load_recipe(recipe, registry=registry).warnings
    assert (warning.line, warning.message) == (
        6,
        "component nginx@2.0.0 is deprecated: breaks TLS 1.2 clients",
    )
    recipe.write_text(RECIPE.format(pattern="3.x"))
    with pytest.raises(ValidationFailed) as missing:
        load_recipe(recipe, registry=registry)
    (issue,) = missing.value.issues
    assert issue.line == 6
    assert "no published version of component nginx matches 3.x" in issue.message
    assert "available versions of nginx: 1.0.0, 1.2.0, 1.2.3, 1.10.0, 2.0.0 (deprecated)" in issue.message
    recipe.write_text(RECIPE.format(pattern="1.x.2"))
    with pytest.raises(ValidationFailed, match="trailing positions"):
        load_recipe(recipe, registry=registry)


def test_files_and_builtins_without_version_work_as_before(tmp_path: Path) -> None:
    (tmp_path / "local.yaml").write_text(_named(tmp_path, "local").read_text())
    recipe = tmp_path / "web.yaml"
    recipe.write_text("name: web\nversion: 1.0.0\nparent: debian:bookworm\n"
                      "components: [update-os, hardening/sshd, local.yaml]\n")  # fmt: skip
    loaded = load_recipe(recipe)  # no registry needed
    assert [c.version for c in loaded.components] == ["builtin", "builtin", "local"]


def test_reference_forms(nginx: Catalog, tmp_path: Path) -> None:
    registry = CatalogRegistry(lambda: nginx, tmp_path / "documents")
    recipe = tmp_path / "web.yaml"
    recipe.write_text("name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n"
                      "  - hardening/sshd@1.0.0\n  - {name: nginx@latest, parameters: {}}\n")  # fmt: skip
    loaded = load_recipe(recipe, registry=registry)
    assert [(c.label, c.version) for c in loaded.components] == [
        ("hardening/sshd", "1.0.0"),
        ("nginx", "1.10.0"),
    ]
    recipe.write_text("name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents:\n"
                      "  - {name: nginx@1.x, version: 9.9.9}\n")  # fmt: skip
    with pytest.raises(ValidationFailed, match="'version' cannot be combined with a registry reference"):
        load_recipe(recipe, registry=registry)
    with pytest.raises(ValidationFailed, match="registry references need the catalog"):
        load_recipe(_plain(tmp_path))


def _plain(folder: Path) -> Path:
    path = folder / "plain.yaml"
    path.write_text("name: web\nversion: 1.0.0\nparent: debian:bookworm\ncomponents: [nginx@1.x]\n")
    return path


def test_concurrent_publishers_agree(catalog: Catalog, write_doc: Callable[..., Path]) -> None:
    """Eight publishers of one version at once: one creates it, the others find it unchanged."""
    from concurrent.futures import ThreadPoolExecutor

    doc = write_doc("raced", "1.0.0")
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: publish_component(catalog, doc, who=WHO), range(8)))
    assert sorted(o.created for o in outcomes) == [False] * 7 + [True]
    assert len(list_components(catalog, "raced")) == 1


def test_byte_order_mark_is_not_part_of_the_digest(catalog: Catalog, tmp_path: Path) -> None:
    """The stored text (without a file's BOM) is what builds read and record: one digest throughout."""
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + _named(tmp_path, "bom").read_bytes())
    published = publish_component(catalog, path, version="1.0.0", who=WHO)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nversion: 1.0.0\nparent: debian:bookworm\ncomponents: [bom@1.0.0]\n")
    (component,) = load_recipe(recipe, registry=CatalogRegistry(lambda: catalog, tmp_path / "d")).components
    assert component.document.digest == published.digest
