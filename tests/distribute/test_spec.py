"""The recipe's `distribution:` section: validated with the rest of the recipe, errors with positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.errors import ValidationFailed
from kiln.recipes.loader import load_recipe

RECIPE = """\
name: web
version: 1.0.0
parent: debian:bookworm
components: [update-os]
distribution:
"""


def issues(tmp_path: Path, targets: str) -> list[str]:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE + targets)
    with pytest.raises(ValidationFailed) as info:
        load_recipe(path)
    return [str(i).replace(str(path), "R") for i in info.value.issues]


def test_valid_targets_load(tmp_path: Path) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE + "  - {name: shelf, type: directory, path: out}\n"
                    "  - {name: reg, type: oci, repositories: [example.com/a/b], tags: ['{{ version }}']}\n"
                    "  - {name: aws, type: ami, snapshot_method: ebs-direct}\n")  # fmt: skip
    recipe = load_recipe(path).recipe
    assert [t.name for t in recipe.distribution] == ["shelf", "reg", "aws"]


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ("  - {name: a, type: ftp}\n", "R:6:5: distribution[0]: unknown type 'ftp'"),
        ("  - {name: a, type: oci, repositories: [Example.com/A]}\n", "is not host[:port]/repository"),
        (
            "  - {name: a, type: oci, repositories: [r.io/x], tags: ['{{ colour }}']}\n",
            "unknown template variable",
        ),
        ("  - {name: a, type: s3, bucket: B_ad}\n", "is not an S3 bucket name"),
        ("  - {name: a, type: s3, bucket: ok-bucket, part_size: 1M}\n", "at least 5M"),
        ("  - {name: a, type: ami}\n", "snapshot_method import needs a bucket"),
        ("  - {name: a, type: ami, snapshot_method: ebs-direct, disk: vhd}\n", "raw disks only"),
        (
            "  - {name: a, type: directory, path: x}\n  - {name: a, type: directory, path: y}\n",
            "declared twice",
        ),
    ],
)
def test_bad_targets_name_their_position(tmp_path: Path, targets: str, expected: str) -> None:
    found = issues(tmp_path, targets)
    assert any(expected in i for i in found), found
