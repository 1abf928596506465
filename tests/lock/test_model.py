"""Lock files: stable JSON round trip, and clear errors (file:line: field: message) on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kiln.errors import KilnError, ValidationFailed
from kiln.lock import ComponentLock, LockedPackage, LockFile, read_lockfile, write_lockfile
from tests.lock.conftest import make_lock

SHA = "0123456789abcdef" * 4


def sample() -> LockFile:
    lock = make_lock(
        [
            LockedPackage(name="zlib1g", version="1:1.2.13.dfsg-1", architecture="amd64", source="zlib",
                          sha256=SHA, filename="zlib1g_1%3a1.2.13.dfsg-1_amd64.deb"),
            LockedPackage(name="base-files", version="12.4+deb12u5", architecture="amd64"),
        ]
    )  # fmt: skip
    return lock.model_copy(
        update={
            "components": [ComponentLock(name="web", digest="sha256:" + "b" * 64, parameters={"port": 80})]
        }
    )


def test_round_trip_is_stable_and_sorted(tmp_path: Path) -> None:
    lock = sample()
    assert [p.name for p in lock.packages] == ["base-files", "zlib1g"]  # sorted on load
    write_lockfile(tmp_path / "a.json", lock)
    again = read_lockfile(tmp_path / "a.json")
    assert again == lock
    write_lockfile(tmp_path / "b.json", again)
    text = (tmp_path / "a.json").read_text()
    assert text == (tmp_path / "b.json").read_text()
    assert json.loads(text)["schema_version"] == 1
    assert lock.digest == again.digest and lock.digest.startswith("sha256:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temp file left


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "lock.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def test_bad_sha256_names_the_line_field_and_package(tmp_path: Path) -> None:
    data = sample().model_dump(mode="json")
    data["packages"][1]["sha256"] = "not-a-hash"
    path = _write(tmp_path, data)
    with pytest.raises(ValidationFailed) as info:
        read_lockfile(path)
    [issue] = info.value.issues
    assert issue.field == "packages[1].sha256"
    line = path.read_text().splitlines()[issue.line - 1]  # type: ignore[operator]
    assert '"sha256": "not-a-hash"' in line
    assert "should match pattern" in issue.message


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda d: d["parent"].pop("source_date_epoch"),
            "parent.source_date_epoch",
            "required field is missing",
        ),
        (lambda d: d.update(surprise=1), "surprise", "unknown field"),
        (lambda d: d["packages"].append(dict(d["packages"][0])), "packages", "listed twice"),
        (
            lambda d: d["packages"][0].update(filename="../../etc/passwd"),
            "packages[0].filename",
            "plain .deb",
        ),
        (lambda d: d["components"][0].update(digest="md5:x"), "components[0].digest", "pattern"),
    ],
)
def test_invalid_fields_are_reported(tmp_path: Path, change: object, field: str, message: str) -> None:
    data = sample().model_dump(mode="json")
    change(data)  # type: ignore[operator]
    with pytest.raises(ValidationFailed) as info:
        read_lockfile(_write(tmp_path, data))
    assert any(i.field == field and message in i.message and i.line for i in info.value.issues), info.value


def test_not_json_and_wrong_version_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    path.write_text('{\n  "schema_version": 1,\n  "recipe": {,\n}')
    with pytest.raises(ValidationFailed, match=r"lock.json:3:\d+: not valid JSON"):
        read_lockfile(path)
    path.write_text('{\n  "schema_version": 7\n}')
    with pytest.raises(
        ValidationFailed, match=r"lock.json:2:\d+: schema_version: unsupported lock file version 7"
    ):
        read_lockfile(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValidationFailed, match="a lock file is a JSON object"):
        read_lockfile(path)
    with pytest.raises(KilnError, match="lock file not found"):
        read_lockfile(tmp_path / "nope.json")
