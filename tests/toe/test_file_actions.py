"""Per-action tables for the file-system family on a temporary root: effects and exact errors."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kiln.toe.actions import ActionFailed
from tests.toe.conftest import call


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_create_file_defaults_parents_and_encodings(tiny_root: Path) -> None:
    call(tiny_root, "CreateFile", [
        {"path": "/opt/app/conf.txt", "content": "a=1\n"},
        {"path": "/opt/app/u16.txt", "content": "hé", "encoding": "UTF-16"},
        {"path": "/opt/app/u32be.txt", "content": "x", "encoding": "utf-32-BE"},
        {"path": "/opt/app/mode.txt", "permissions": "0750", "owner": "web", "group": "staff"},
        {"path": "/opt/app/oct.txt", "permissions": 640},
    ])  # fmt: skip
    app = tiny_root / "opt/app"
    assert (app / "conf.txt").read_text() == "a=1\n"
    assert mode(app / "conf.txt") == 0o644 and mode(app) == 0o755
    assert (app / "u16.txt").read_bytes() == "hé".encode("utf-16-le")
    assert (app / "u32be.txt").read_bytes() == "x".encode("utf-32-be")
    st_ = (app / "mode.txt").stat()
    assert mode(app / "mode.txt") == 0o750 and (st_.st_uid, st_.st_gid) == (1234, 50)
    assert mode(app / "oct.txt") == 0o640


def test_create_file_overwrite_false_and_owner_primary_group(tiny_root: Path) -> None:
    call(tiny_root, "CreateFile", [{"path": "/srv/x", "content": "1", "owner": "web"}])
    assert ((tiny_root / "srv/x").stat().st_uid, (tiny_root / "srv/x").stat().st_gid) == (1234, 1300)
    with pytest.raises(ActionFailed, match="already exists and overwrite is false"):
        call(tiny_root, "CreateFile", [{"path": "/srv/x", "content": "2", "overwrite": False}])
    assert (tiny_root / "srv/x").read_text() == "1"


@pytest.mark.parametrize(
    ("action", "inputs", "message"),
    [
        ("CreateFile", [{"path": "/x", "permissions": "0999"}], "permissions must be an octal mode"),
        ("CreateFile", [{"path": "/x", "encoding": "latin1"}], "unsupported encoding 'latin1'"),
        ("CreateFile", [{"content": "x"}], "Field required"),
        ("CreateFile", {"path": "/x"}, "Input should be a valid list"),
        ("CopyFile", [{"source": "/a"}], "Field required"),
        ("DeleteFolder", [{"path": "/a", "force": "maybe"}], "Input should be a valid boolean"),
        ("ExecuteBash", {"commands": []}, "List should have at least 1 item"),
        ("ExecuteBash", {"command": ["ls"]}, "Field required"),  # ``command`` is only unused
        (
            "WebDownload",
            [{"source": "ftp://x/y", "destination": "/tmp/"}],
            "must be an http:// or https:// URL",
        ),
        ("WebDownload", [{"source": "http://x/y", "destination": "/t", "checksum": "ab"}], "given together"),
        (
            "WebDownload",
            [{"source": "http://x/y", "destination": "/t", "checksum": "ab", "algorithm": "CRC"}],
            "Input should be 'MD5', 'SHA1', 'SHA256' or 'SHA512'",
        ),
        ("S3Download", [{"source": "https://b/k", "destination": "/t"}], "must be an s3://bucket/key URL"),
        ("UpdateOS", {"include": "curl"}, "Input should be a valid list"),
        ("Reboot", {"delaySeconds": -1}, "greater than or equal to 0"),
        ("ExecuteDocument", {"document": "s3://b/doc.yaml"}, "need AWS"),
        ("Assert", {"stringEquals": "a"}, "needs 'value:'"),
        ("Assert", {"bogus": 1}, "unknown condition operator"),
    ],
)
def test_invalid_inputs_are_rejected(tiny_root: Path, action: str, inputs: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        call(tiny_root, action, inputs)
    assert message in str(info.value)


def test_append_file(tiny_root: Path) -> None:
    (tiny_root / "etc/motd").write_text("hello\n")
    call(tiny_root, "AppendFile", [{"path": "/etc/motd", "content": "world\n"}, {"path": "/etc/motd"}])
    assert (tiny_root / "etc/motd").read_text() == "hello\nworld\n"
    with pytest.raises(ActionFailed, match="/etc/none: no such file"):
        call(tiny_root, "AppendFile", [{"path": "/etc/none", "content": "x"}])


def test_copy_and_move_files_with_wildcards(tiny_root: Path) -> None:
    src = tiny_root / "src"
    src.mkdir()
    for name in ("a.conf", "b.conf", "c.txt"):
        (src / name).write_text(name)
    call(tiny_root, "CopyFile", [
        {"source": "/src/*.conf", "destination": "/dst/"},
        {"source": "/src/c.txt", "destination": "/renamed/c2.txt"},
        {"source": "/src/c.txt", "destination": "/dst"},  # an existing folder: copied into it
    ])  # fmt: skip
    assert sorted(p.name for p in (tiny_root / "dst").iterdir()) == ["a.conf", "b.conf", "c.txt"]
    assert (tiny_root / "renamed/c2.txt").read_text() == "c.txt"
    with pytest.raises(ActionFailed, match="must end with / when the source has a wildcard"):
        call(tiny_root, "CopyFile", [{"source": "/src/*.conf", "destination": "/dst2"}])
    with pytest.raises(ActionFailed, match="wildcards are accepted only after the last path separator"):
        call(tiny_root, "CopyFile", [{"source": "/s*/a.conf", "destination": "/dst/"}])
    with pytest.raises(ActionFailed, match="already exists and overwrite is false"):
        call(tiny_root, "CopyFile", [{"source": "/src/a.conf", "destination": "/dst/", "overwrite": False}])
    (tiny_root / "src/c.link").symlink_to("c.txt")
    call(tiny_root, "MoveFile", [{"source": "/src/c.link", "destination": "/moved/"}])
    assert (tiny_root / "moved/c.link").is_symlink() and (src / "c.txt").is_file()
    call(tiny_root, "MoveFile", [{"source": "/src/*.conf", "destination": "/moved/"}])
    assert sorted(p.name for p in src.iterdir()) == ["c.txt"]
    assert (tiny_root / "moved/a.conf").read_text() == "a.conf"
    with pytest.raises(ActionFailed, match="no file matches"):
        call(tiny_root, "MoveFile", [{"source": "/src/*.conf", "destination": "/moved/"}])


def test_copy_and_move_folders(tiny_root: Path) -> None:
    tree = tiny_root / "tree/sub"
    tree.mkdir(parents=True)
    (tree / "f").write_text("f")
    (tiny_root / "tree/link").symlink_to("/etc/passwd")
    call(
        tiny_root,
        "CopyFolder",
        [{"source": "/tree", "destination": "/copy"}, {"source": "/tree", "destination": "/into/"}],
    )
    assert (tiny_root / "copy/sub/f").read_text() == "f"
    assert (tiny_root / "copy/link").readlink().as_posix() == "/etc/passwd"
    assert (tiny_root / "into/tree/sub/f").is_file()
    with pytest.raises(ActionFailed, match="into itself"):
        call(tiny_root, "CopyFolder", [{"source": "/tree", "destination": "/tree/sub/"}])
    with pytest.raises(ActionFailed, match="already exists and overwrite is false"):
        call(tiny_root, "CopyFolder", [{"source": "/tree", "destination": "/copy", "overwrite": False}])
    call(tiny_root, "MoveFolder", [{"source": "/copy", "destination": "/moved/"}])
    assert not (tiny_root / "copy").exists() and (tiny_root / "moved/copy/sub/f").is_file()
    (tiny_root / "linkdir").symlink_to("moved/copy")
    call(tiny_root, "MoveFolder", [{"source": "/linkdir", "destination": "/links/"}])
    assert (
        tiny_root / "links/linkdir"
    ).readlink().as_posix() == "moved/copy"  # the link moved, not its folder
    assert (tiny_root / "moved/copy/sub/f").is_file()


def test_symlinks(tiny_root: Path) -> None:
    call(tiny_root, "CreateSymlink", [{"path": "/usr/bin/pw", "target": "/etc/passwd"}])
    assert (tiny_root / "usr/bin/pw").readlink().as_posix() == "/etc/passwd"
    with pytest.raises(ActionFailed, match="already exists"):
        call(tiny_root, "CreateSymlink", [{"path": "/usr/bin/pw", "target": "/etc/group"}])
    call(tiny_root, "CreateSymlink", [{"path": "/usr/bin/pw", "target": "/etc/group", "force": True}])
    assert (tiny_root / "usr/bin/pw").readlink().as_posix() == "/etc/group"
    with pytest.raises(ActionFailed, match="symlink target /nowhere does not exist"):
        call(tiny_root, "CreateSymlink", [{"path": "/l", "target": "/nowhere"}])
    with pytest.raises(ActionFailed, match="exists and is not a symbolic link"):
        call(tiny_root, "CreateSymlink", [{"path": "/etc/group", "target": "/etc/passwd", "force": True}])


def test_delete_file_and_folder(tiny_root: Path) -> None:
    logs = tiny_root / "var/log"
    logs.mkdir(parents=True)
    for name in ("a.log", "b.log", "keep.txt"):
        (logs / name).write_text("x")
    (logs / "link.log").symlink_to("/etc/passwd")
    call(tiny_root, "DeleteFile", [{"path": "/var/log/*.log"}])
    assert sorted(p.name for p in logs.iterdir()) == ["keep.txt"]
    assert (tiny_root / "etc/passwd").is_file()  # the link went, not its target
    with pytest.raises(ActionFailed, match="no such file"):
        call(tiny_root, "DeleteFile", [{"path": "/var/log/a.log"}])
    with pytest.raises(ActionFailed, match="is a folder; use DeleteFolder"):
        call(tiny_root, "DeleteFile", [{"path": "/var/log"}])
    with pytest.raises(ActionFailed, match="is not empty"):
        call(tiny_root, "DeleteFolder", [{"path": "/var/log/"}])
    call(tiny_root, "DeleteFolder", [{"path": "/var/log/", "force": True}])
    assert not logs.exists()
    with pytest.raises(ActionFailed, match="refusing to delete the image's root folder"):
        call(tiny_root, "DeleteFolder", [{"path": "/", "force": True}])


def test_list_and_read_files(tiny_root: Path) -> None:
    (tiny_root / "etc/app.d/sub").mkdir(parents=True)
    (tiny_root / "etc/app.d/one.conf").write_text("1")
    (tiny_root / "etc/app.d/sub/two.conf").write_text("2")
    (tiny_root / "etc/app.d/notes.txt").write_text("notes\nline2")
    out = call(tiny_root, "ListFiles", [{"path": "/etc/app.d", "fileNamePattern": "*.conf"}])
    assert out == {"files": "/etc/app.d/one.conf"}
    out = call(
        tiny_root, "ListFiles", [{"path": "/etc/app.d", "recursive": True, "fileNamePattern": "*.conf"}]
    )
    assert out == {"files": "/etc/app.d/one.conf,/etc/app.d/sub/two.conf"}
    lines: list[str] = []
    out = call(tiny_root, "ReadFile", [{"path": "/etc/app.d/notes.txt", "printFileContent": True}], lines)
    assert out == {"content": "notes\nline2"} and lines == ["notes", "line2"]
    with pytest.raises(ActionFailed, match="no such folder"):
        call(tiny_root, "ListFiles", [{"path": "/nope"}])


def test_set_encoding_owner_permissions(tiny_root: Path) -> None:
    d = tiny_root / "srv/www/sub"
    d.mkdir(parents=True)
    (d / "index.html").write_text("ok")
    (tiny_root / "srv/www/hostlink").symlink_to("/etc/passwd")
    call(tiny_root, "SetFileEncoding", [{"path": "/srv/www/sub/index.html", "encoding": "utf16"}])
    assert (d / "index.html").read_bytes() == "ok".encode("utf-16-le")
    call(tiny_root, "SetFolderOwner", [{"path": "/srv/www", "owner": "web", "group": "webgrp"}])
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in (d, d / "index.html")} == {(1234, 1300)}
    call(tiny_root, "SetFolderPermissions", [{"path": "/srv/www", "permissions": "0700"}])
    assert mode(d) == 0o700 and mode(d / "index.html") == 0o700
    assert mode(tiny_root / "etc/passwd") != 0o700  # the link was not followed
    call(tiny_root, "SetFilePermissions", [{"path": "/srv/www/sub/index.html", "permissions": "444"}])
    assert mode(d / "index.html") == 0o444
    call(tiny_root, "SetFileOwner", [{"path": "/srv/www/sub/index.html", "owner": "root"}])
    assert (d / "index.html").stat().st_uid == 0
    with pytest.raises(ActionFailed, match="user 'nobody2' does not exist in the image"):
        call(tiny_root, "SetFileOwner", [{"path": "/srv/www/sub/index.html", "owner": "nobody2"}])
    with pytest.raises(ActionFailed, match="group 'wheel' does not exist in the image"):
        call(tiny_root, "SetFolderOwner", [{"path": "/srv/www", "owner": "web", "group": "wheel"}])
