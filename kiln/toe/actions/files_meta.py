"""DeleteFile, DeleteFolder, ListFiles, ReadFile, SetFileEncoding, Set{File,Folder}{Owner,Permissions}."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import RootModel

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.fileutil import (
    Encoding,
    Mode,
    PathText,
    apply_owner,
    has_wildcard,
    host_path,
    image_path,
    mode_bits,
    name_matches,
    walk,
)


class PathItem(InputModel):
    path: PathText


class DeleteFile(Action):
    """Deletes files (a ``*`` in the file name deletes every match; links are removed, not followed)."""

    name = "DeleteFile"

    class Inputs(RootModel[list[PathItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            if has_wildcard(item.path):
                folder, _, pattern = item.path.rpartition("/")
                if "*" in folder:
                    raise ActionFailed(
                        f"{item.path}: wildcards are accepted only after the last path separator"
                    )
                base = host_path(ctx, folder or "/")
                if not base.is_dir():
                    continue
                for entry in sorted(os.scandir(base), key=lambda e: e.name):
                    if name_matches(pattern, entry.name) and not entry.is_dir(follow_symlinks=False):
                        Path(entry.path).unlink()
                continue
            target = host_path(ctx, item.path, follow_last=False)
            if target.is_dir() and not target.is_symlink():
                raise ActionFailed(f"{item.path} is a folder; use DeleteFolder")
            if not target.exists() and not target.is_symlink():
                raise ActionFailed(f"{item.path}: no such file")
            target.unlink()
        return {}


class DeleteFolderItem(InputModel):
    path: PathText
    force: bool = False


class DeleteFolder(Action):
    """Deletes a folder; a non-empty one only with ``force: true``. Never the image root."""

    name = "DeleteFolder"

    class Inputs(RootModel[list[DeleteFolderItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path.rstrip("/") or "/", follow_last=False)
            if target == ctx.root:
                raise ActionFailed(f"{item.path}: refusing to delete the image's root folder")
            if target.is_symlink():
                target.unlink()
                continue
            if not target.is_dir():
                raise ActionFailed(f"{item.path}: no such folder")
            if any(target.iterdir()):
                if not item.force:
                    raise ActionFailed(f"{item.path} is not empty (set force: true to delete its contents)")
                shutil.rmtree(target)
            else:
                target.rmdir()
        return {}


class ListFilesItem(InputModel):
    path: PathText
    file_name_pattern: str | None = None
    recursive: bool = False


class ListFiles(Action):
    """Lists the files of a folder; output ``files`` is comma-separated image paths."""

    name = "ListFiles"

    class Inputs(RootModel[list[ListFilesItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        found: list[str] = []
        for item in inputs.root:
            folder = host_path(ctx, item.path)
            if not folder.is_dir():
                raise ActionFailed(f"{item.path}: no such folder")
            entries = walk(folder) if item.recursive else sorted(folder.iterdir())
            for entry in entries:
                if entry.is_dir() and not entry.is_symlink():
                    continue
                if item.file_name_pattern and not name_matches(item.file_name_pattern, entry.name):
                    continue
                found.append(image_path(ctx, entry))
        return {"files": ",".join(found)}


class ReadFileItem(InputModel):
    path: PathText
    encoding: Encoding = "utf-8"
    print_file_content: bool = False


class ReadFile(Action):
    """Reads a text file into output ``content`` (and the console with ``printFileContent``)."""

    name = "ReadFile"

    class Inputs(RootModel[list[ReadFileItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        contents = []
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if not target.is_file():
                raise ActionFailed(f"{item.path}: no such file")
            try:
                text = target.read_bytes().decode(item.encoding)
            except UnicodeDecodeError as exc:
                raise ActionFailed(f"{item.path} is not valid {item.encoding}: {exc.reason}") from None
            if item.print_file_content:
                for line in text.splitlines():
                    ctx.output(line)
            contents.append(text)
        return {"content": "\n".join(contents)}


class EncodingItem(InputModel):
    path: PathText
    encoding: Encoding = "utf-8"


class SetFileEncoding(Action):
    """Re-encodes a UTF-8 file."""

    name = "SetFileEncoding"

    class Inputs(RootModel[list[EncodingItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if not target.is_file():
                raise ActionFailed(f"{item.path}: no such file")
            try:
                text = target.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                raise ActionFailed(f"{item.path} is not UTF-8; SetFileEncoding converts from UTF-8") from None
            target.write_bytes(text.encode(item.encoding))
        return {}


class FileOwnerItem(InputModel):
    path: PathText
    owner: str
    group: str | None = None


class FolderOwnerItem(FileOwnerItem):
    recursive: bool = True


class SetFileOwner(Action):
    name = "SetFileOwner"

    class Inputs(RootModel[list[FileOwnerItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if not target.is_file():
                raise ActionFailed(f"{item.path}: no such file")
            apply_owner(ctx, target, item.owner, item.group)
        return {}


class SetFolderOwner(Action):
    name = "SetFolderOwner"

    class Inputs(RootModel[list[FolderOwnerItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if not target.is_dir():
                raise ActionFailed(f"{item.path}: no such folder")
            for entry in [target, *(walk(target) if item.recursive else [])]:
                apply_owner(ctx, entry, item.owner, item.group)
        return {}


class FilePermissionsItem(InputModel):
    path: PathText
    permissions: Mode


class FolderPermissionsItem(FilePermissionsItem):
    recursive: bool = True


class SetFilePermissions(Action):
    name = "SetFilePermissions"

    class Inputs(RootModel[list[FilePermissionsItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if not target.is_file():
                raise ActionFailed(f"{item.path}: no such file")
            target.chmod(mode_bits(item.permissions))
        return {}


class SetFolderPermissions(Action):
    name = "SetFolderPermissions"

    class Inputs(RootModel[list[FolderPermissionsItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if not target.is_dir():
                raise ActionFailed(f"{item.path}: no such folder")
            for entry in [target, *(walk(target) if item.recursive else [])]:
                if not entry.is_symlink():  # chmod would follow the link, maybe out of the image
                    entry.chmod(mode_bits(item.permissions))
        return {}
