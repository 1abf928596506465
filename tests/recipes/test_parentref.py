"""Parent references and version constraints (pure parsing; resolution is in tests/catalog)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from kiln.recipes.model import ParentSpec, Recipe
from kiln.recipes.parentref import (
    DistributionSource,
    KilnImageSource,
    OciLayoutSource,
    RegistrySource,
    VersionConstraint,
    parse_parent,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("constraint", "version", "build", "digest", "matches"),
    [
        ("latest", "0.1.0", 1, DIGEST, True),
        ("1.x", "1.0.0", 1, DIGEST, True),
        ("1.x", "1.9.3", 2, DIGEST, True),
        ("1.x", "2.0.0", 1, DIGEST, False),
        ("1.x", "11.0.0", 1, DIGEST, False),  # numeric, not a prefix of the text
        ("1.2.x", "1.2.7", 1, DIGEST, True),
        ("1.2.x", "1.3.0", 1, DIGEST, False),
        ("1.2.x", "1.20.0", 1, DIGEST, False),
        ("1.2.0", "1.2.0", 5, DIGEST, True),
        ("1.2.0", "1.2.1", 1, DIGEST, False),
        ("1.2.0/3", "1.2.0", 3, DIGEST, True),
        ("1.2.0/3", "1.2.0", 2, DIGEST, False),
        (DIGEST, "9.9.9", 9, DIGEST, True),
        (DIGEST, "9.9.9", 9, "sha256:" + "cd" * 32, False),
        ("stable", "1.0.0", 1, DIGEST, False),  # a channel is resolved by the catalog, not by version
    ],
)
def test_constraint_matches(constraint: str, version: str, build: int, digest: str, matches: bool) -> None:
    assert VersionConstraint.parse(constraint).matches(version, build, digest) is matches


@pytest.mark.parametrize(
    ("text", "kind"),
    [("latest", "latest"), ("0.x", "wildcard"), ("3.10.x", "wildcard"), ("1.2.0", "exact"),
     ("1.2.0/12", "build"), (DIGEST, "digest"), ("prod", "channel"), ("pre-prod", "channel")],
)  # fmt: skip
def test_constraint_kinds(text: str, kind: str) -> None:
    assert VersionConstraint.parse(text).kind == kind


@pytest.mark.parametrize(
    "text", ["x", "1.x.x", "1.2.3.x", "1.2", "01.x", "1.2.0/0", "sha256:abc", "Prod", "a/b", ""]
)
def test_bad_constraints(text: str) -> None:
    with pytest.raises(ValueError, match="invalid version constraint"):
        VersionConstraint.parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("debian:bookworm", DistributionSource("debian", "bookworm")),
        ("kiln:org-base@1.x", KilnImageSource("org-base", VersionConstraint("wildcard", "1.x"))),
        ("kiln:org-base", KilnImageSource("org-base", VersionConstraint("latest", "latest"))),
        ("kiln:web@prod", KilnImageSource("web", VersionConstraint("channel", "prod"))),
        ("oci-layout:../base/oci", OciLayoutSource("../base/oci", None)),
        ("oci-layout:/srv/layouts/base:1.0.0", OciLayoutSource("/srv/layouts/base", "1.0.0")),
        (f"docker://127.0.0.1:5000/team/base:1.0@{DIGEST}", RegistrySource("127.0.0.1:5000/team/base", "1.0", DIGEST)),
        (f"docker://registry.example/base@{DIGEST}", RegistrySource("registry.example/base", None, DIGEST)),
    ],
)  # fmt: skip
def test_parent_forms(text: str, expected: object) -> None:
    assert parse_parent(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("centos:7", "unsupported parent 'centos:7'"),
        ("kiln:Org@1.x", "invalid image name 'Org'"),
        ("kiln:org@1.2", "invalid version constraint '1.2'"),
        ("docker://registry.example/base:1.0", "pinned by digest"),
        ("docker://registry.example/base@sha256:12", "invalid digest"),
        ("oci-layout:", "names no layout directory"),
    ],
)
def test_bad_parents(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_parent(text)


def test_distribution_settings_are_refused_for_an_image_parent() -> None:
    with pytest.raises(ValidationError, match="packages apply only to a distribution parent"):
        ParentSpec(image="kiln:org-base@1.x", packages=["curl"])
    assert ParentSpec(image="kiln:org-base@1.x", architecture="amd64").source == KilnImageSource(
        "org-base", VersionConstraint("wildcard", "1.x")
    )


def test_schema_documents_the_parent_forms() -> None:
    schema = json.dumps(Recipe.model_json_schema())
    for form in ("kiln:NAME@CONSTRAINT", "1.2.0/3", "oci-layout:PATH[:TAG]", "docker://HOST/REPO:TAG@sha256"):
        assert form in schema
