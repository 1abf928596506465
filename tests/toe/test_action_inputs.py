"""Every registered action, fed inputs its model rejects: the exact error text a user sees.

Each row is one step's ``inputs`` (YAML, indented under ``inputs:``; ``None`` leaves the key out) and
every issue :func:`load_document` reports for it, as ``(line:column, field after the step, message)``.
The test compares the whole ``ValidationFailed`` text, so a changed position, path or wording fails.
A new action fails :func:`test_table_covers_every_registered_action` until it has rows here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiln.errors import ValidationFailed
from kiln.toe.actions import Action
from kiln.toe.document import load_document

FILE = "component.yaml"
STEP = "phases[build].steps[S]"
HEAD = "name: t\nschemaVersion: 1.0\nphases:\n  - name: build\n    steps:\n      - name: S\n"


def document(action: str, inputs: str | None) -> str:
    """Line 7 is ``action:``, line 8 ``inputs:``, the inputs start on line 9 (column 11)."""
    text = HEAD + f"        action: {action}\n"
    if inputs is not None:
        text += "        inputs:\n" + "".join(f"          {line}\n" for line in inputs.splitlines())
    return text


def case(action: str, inputs: str | None, *expected: tuple[str, str, str]) -> Any:
    return pytest.param(action, inputs, list(expected), id=action)


ROWS = [
    case("ExecuteBash", "commands: echo hi", ("9:11", "inputs.commands", "Input should be a valid list")),
    case("ExecuteBash", "commands: []", ("9:11", "inputs.commands", "List should have at least 1 item")),
    case("ExecuteBash", None, ("6:9", "inputs.commands", "Field required")),
    case("ExecuteBash", "echo hi", ("8:9", "inputs", "Input should be a mapping")),
    case("ExecuteBinary", "arguments: [--version]", ("8:9", "inputs.path", "Field required")),
    case(
        "ExecuteBinary",
        "path: /usr/bin/env\narguments: -i",
        ("10:11", "inputs.arguments", "Input should be a valid list"),
    ),
    case(
        "ExecuteDocument",
        "document: s3://bucket/doc.yaml",
        (
            "9:11",
            "inputs.document",
            "s3://bucket/doc.yaml: documents in S3 or Image Builder ARNs need AWS; download the document first or give a local path",
        ),
    ),
    case("ExecuteDocument", "phases: build", ("8:9", "inputs.document", "Field required")),
    case(
        "ExecuteDocument",
        "document: other.yaml\nparameters:\n  - {name: Size, value: {gb: 8}}",
        ("11:28", "inputs.parameters[0].value", "value must be a string or a list of strings"),
    ),
    case(
        "ExecuteDocument",
        "document: other.yaml\nparameters: [Size=8]",
        ("10:24", "inputs.parameters[0]", "Input should be a mapping"),
    ),
    case(
        "CreateFile",
        "- path: /etc/motd\n  permissions: '0999'",
        ("10:13", "inputs[0].permissions", "permissions must be an octal mode such as 0755, got '0999'"),
    ),
    case(
        "CreateFile",
        "- {path: /etc/motd, encoding: latin1}",
        (
            "9:31",
            "inputs[0].encoding",
            "unsupported encoding 'latin1'; use utf8, utf16, utf32 (optionally -LE or -BE)",
        ),
    ),
    case("CreateFile", "path: /etc/motd", ("8:9", "inputs", "Input should be a valid list")),
    case("CreateFile", "- /etc/motd", ("9:13", "inputs[0]", "Input should be a mapping")),
    case(
        "CreateFolder",
        "- {path: /opt/app, permissions: rwx}",
        ("9:30", "inputs[0].permissions", "permissions must be an octal mode such as 0755, got 'rwx'"),
    ),
    case("CreateFolder", "- {owner: root}", ("9:13", "inputs[0].path", "Field required")),
    case("CreateSymlink", "- {path: /usr/local/bin/app}", ("9:13", "inputs[0].target", "Field required")),
    case(
        "CreateSymlink",
        "- {path: /usr/local/bin/app, target: /opt/app, force: maybe}",
        ("9:58", "inputs[0].force", "Input should be a valid boolean, unable to interpret input"),
    ),
    case(
        "AppendFile",
        "- {path: /etc/motd, encoding: ascii}",
        (
            "9:31",
            "inputs[0].encoding",
            "unsupported encoding 'ascii'; use utf8, utf16, utf32 (optionally -LE or -BE)",
        ),
    ),
    case(
        "AppendFile",
        "- {path: /etc/motd, encoding: 8}",
        (
            "9:31",
            "inputs[0].encoding",
            "unsupported encoding '8'; use utf8, utf16, utf32 (optionally -LE or -BE)",
        ),
    ),
    case(
        "AppendFile",
        "- {path: /etc/motd, content: [a, b]}",
        ("9:31", "inputs[0].content", "Input should be a valid string"),
    ),
    case("CopyFile", "- {source: /etc/hosts}", ("9:13", "inputs[0].destination", "Field required")),
    case("CopyFile", None, ("6:9", "inputs", "Input should be a valid list")),
    case(
        "CopyFolder",
        "- {source: /opt/a, destination: /opt/b, overwrite: sometimes}",
        ("9:51", "inputs[0].overwrite", "Input should be a valid boolean, unable to interpret input"),
    ),
    case("MoveFile", "- {source: /tmp/a}", ("9:13", "inputs[0].destination", "Field required")),
    case("MoveFolder", "- {destination: /opt/b}", ("9:13", "inputs[0].source", "Field required")),
    case(
        "DeleteFile",
        "- {file: /tmp/a}",
        ("9:13", "inputs[0].path", "Field required"),  # ``file`` is only a warning (below)
    ),
    case("DeleteFile", "- {path: ''}", ("9:14", "inputs[0].path", "String should have at least 1 character")),
    case(
        "DeleteFolder",
        "- {path: /opt/a, force: maybe}",
        ("9:28", "inputs[0].force", "Input should be a valid boolean, unable to interpret input"),
    ),
    case(
        "ListFiles",
        "- {path: /etc, fileNamePattern: ['*.conf']}",
        ("9:26", "inputs[0].fileNamePattern", "Input should be a valid string"),
    ),
    case("ListFiles", "- {recursive: true}", ("9:13", "inputs[0].path", "Field required")),
    case(
        "ReadFile",
        "- {path: /etc/motd, encoding: ebcdic}",
        (
            "9:31",
            "inputs[0].encoding",
            "unsupported encoding 'ebcdic'; use utf8, utf16, utf32 (optionally -LE or -BE)",
        ),
    ),
    case(
        "ReadFile",
        "- {path: /etc/motd, printFileContent: loud}",
        ("9:31", "inputs[0].printFileContent", "Input should be a valid boolean, unable to interpret input"),
    ),
    case(
        "SetFileEncoding",
        "- {path: /etc/motd, encoding: latin-1}",
        (
            "9:31",
            "inputs[0].encoding",
            "unsupported encoding 'latin-1'; use utf8, utf16, utf32 (optionally -LE or -BE)",
        ),
    ),
    case("SetFileOwner", "- {path: /etc/motd}", ("9:13", "inputs[0].owner", "Field required")),
    case(
        "SetFileOwner",
        "- {path: /etc/motd, owner: {name: root}}",
        ("9:31", "inputs[0].owner", "Input should be a valid string"),
    ),
    case(
        "SetFolderOwner",
        "- {path: /srv, owner: web, recursive: maybe}",
        ("9:38", "inputs[0].recursive", "Input should be a valid boolean, unable to interpret input"),
    ),
    case("SetFilePermissions", "- {path: /etc/motd}", ("9:13", "inputs[0].permissions", "Field required")),
    case(
        "SetFilePermissions",
        "- {path: /etc/motd, permissions: '0888'}",
        ("9:31", "inputs[0].permissions", "permissions must be an octal mode such as 0755, got '0888'"),
    ),
    case(
        "SetFolderPermissions",
        "- {path: /srv, permissions: u+x}",
        ("9:26", "inputs[0].permissions", "permissions must be an octal mode such as 0755, got 'u+x'"),
    ),
    case(
        "Assert",
        "stringEquals: ok",
        ("8:9", "inputs", "'stringEquals' needs 'value:' (the value tested against 'ok')"),
    ),
    case("Assert", "fileExist: /etc/hosts", ("8:9", "inputs", "unknown condition operator(s) fileExist")),
    case(
        "Assert",
        "{stringEquals: a, numberEquals: 1, value: b}",
        ("8:9", "inputs", "a condition needs exactly one operator, found 2"),
    ),
    case(
        "Assert",
        "- {fileExists: /etc/hosts}",
        ("8:9", "inputs", "a condition must be a mapping with one operator"),
    ),
    case("Assert", "and: []", ("8:9", "inputs", "'and' takes a non-empty list of conditions")),
    case(
        "Assert",
        "fileSHA256Equals: ab12",
        ("8:9", "inputs", "'fileSHA256Equals' needs 'path:' (the file whose hash is compared)"),
    ),
    case("UpdateOS", "include: curl", ("9:11", "inputs.include", "Input should be a valid list")),
    case("UpdateOS", "[curl]", ("8:9", "inputs", "Input should be a mapping")),
    case(
        "Reboot",
        "delaySeconds: -1",
        ("9:11", "inputs.delaySeconds", "Input should be greater than or equal to 0"),
    ),
    case(
        "Reboot",
        "delaySeconds: soon",
        (
            "9:11",
            "inputs.delaySeconds",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
    ),
    case(
        "Reboot",
        "delaySeconds: 1.5",
        (
            "9:11",
            "inputs.delaySeconds",
            "Input should be a valid integer, got a number with a fractional part",
        ),
    ),
    case(
        "WebDownload",
        "- {source: 'ftp://example.com/a.tgz', destination: /tmp/}",
        (
            "9:14",
            "inputs[0].source",
            "source must be an http:// or https:// URL, got 'ftp://example.com/a.tgz'",
        ),
    ),
    case(
        "WebDownload",
        "- {source: 'https://example.com/a.tgz', destination: /tmp/, checksum: ab12}",
        ("9:13", "inputs[0]", "checksum and algorithm must be given together"),
    ),
    case(
        "WebDownload",
        "- {source: 'https://example.com/a.tgz', destination: /tmp/, checksum: ab12, algorithm: CRC32}",
        ("9:87", "inputs[0].algorithm", "Input should be 'MD5', 'SHA1', 'SHA256' or 'SHA512'"),
    ),
    case(
        "WebDownload",
        "- {source: 'https://example.com/a.tgz'}",
        ("9:13", "inputs[0].destination", "Field required"),
    ),
    case(
        "S3Download",
        "- {source: 'https://bucket/key', destination: /tmp/}",
        ("9:14", "inputs[0].source", "must be an s3://bucket/key URL, got 'https://bucket/key'"),
    ),
    case("S3Download", "- {source: 's3://bucket/key'}", ("9:13", "inputs[0].destination", "Field required")),
    case(
        "S3Upload",
        "- {source: /var/log/app.log, destination: /tmp/}",
        ("9:40", "inputs[0].destination", "must be an s3://bucket/key URL, got '/tmp/'"),
    ),
    case(
        "S3Upload",
        "- {source: /var/log/, destination: 's3://bucket/logs/', recurse: maybe}",
        ("9:67", "inputs[0].recurse", "Input should be a valid boolean, unable to interpret input"),
    ),
    # Windows-only actions: recognised, and rejected before their inputs are looked at.
    case(
        "ExecutePowerShell",
        "commands: ['Get-Date']",
        ("7:9", "action", "ExecutePowerShell: Windows action, not supported on Linux images"),
    ),
    case(
        "InstallMSI",
        "path: C:\\app.msi",
        ("7:9", "action", "InstallMSI: Windows action, not supported on Linux images"),
    ),
    case(
        "UninstallMSI",
        "path: C:\\app.msi",
        ("7:9", "action", "UninstallMSI: Windows action, not supported on Linux images"),
    ),
    case(
        "SetRegistry",
        "- {path: 'HKLM:/Software/App', name: Version, value: '1', type: SZ}",
        ("7:9", "action", "SetRegistry: Windows action, not supported on Linux images"),
    ),
]

LINUX_ACTIONS = sorted(name for name, cls in Action.registry.items() if not cls.windows_only)
WINDOWS_ACTIONS = sorted(name for name, cls in Action.registry.items() if cls.windows_only)


def test_table_covers_every_registered_action() -> None:
    covered = {row.values[0] for row in ROWS}
    assert sorted(set(Action.registry) - covered) == [], "actions without invalid-input rows"
    assert sorted(covered - set(Action.registry)) == [], "rows for actions that are not registered"
    assert len(LINUX_ACTIONS) == 26
    assert WINDOWS_ACTIONS == ["ExecutePowerShell", "InstallMSI", "SetRegistry", "UninstallMSI"]


@pytest.mark.parametrize(("action", "inputs", "expected"), ROWS)
def test_invalid_inputs_exact_error(
    action: str, inputs: str | None, expected: list[tuple[str, str, str]]
) -> None:
    with pytest.raises(ValidationFailed) as info:
        load_document(Path(FILE), document(action, inputs))
    lines = [f"{FILE}:{position}: {STEP}.{field}: {message}" for position, field, message in expected]
    assert str(info.value) == f"{len(lines)} validation error(s):\n" + "\n".join(lines)


UNUSED = "does not use input {!r}: AWSTOE ignores it and so does Kiln (an error with --strict)"


@pytest.mark.parametrize(
    ("action", "inputs", "position", "field"),
    [
        ("CreateFile", "- {path: /etc/motd, mode: '0644'}", "9:31", "inputs[0].mode"),
        (
            "MoveFile",
            "- {source: /tmp/a, destination: /tmp/b, recursive: true}",
            "9:51",
            "inputs[0].recursive",
        ),
        ("DeleteFile", "- {path: /tmp/a, force: true}", "9:28", "inputs[0].force"),
        ("UpdateOS", "packages: [curl]", "9:11", "inputs.packages"),
    ],
)
def test_unused_inputs_are_warnings(action: str, inputs: str, position: str, field: str) -> None:
    doc = load_document(Path(FILE), document(action, inputs))
    key = field.rsplit(".", 1)[-1]
    assert [str(w) for w in doc.warnings] == [
        f"{FILE}:{position}: {STEP}.{field}: {action} {UNUSED.format(key)}"
    ]
