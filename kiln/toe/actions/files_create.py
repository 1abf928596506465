"""CreateFile, CreateFolder, CreateSymlink, AppendFile: make things inside the image root."""

from __future__ import annotations

import os

from pydantic import RootModel

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.fileutil import (
    DEFAULT_DIR_MODE,
    DEFAULT_FILE_MODE,
    Encoding,
    Mode,
    PathText,
    apply_owner,
    host_path,
    image_path,
    make_dirs,
    mode_bits,
)


class CreateFileItem(InputModel):
    path: PathText
    content: str = ""
    encoding: Encoding = "utf-8"
    owner: str | None = None
    group: str | None = None
    permissions: Mode | None = None
    overwrite: bool = True


class CreateFile(Action):
    """Writes files (parents created); fails on an existing file when ``overwrite: false``."""

    name = "CreateFile"

    class Inputs(RootModel[list[CreateFileItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if target.is_dir():
                raise ActionFailed(f"{item.path} is a folder")
            if target.exists() and not item.overwrite:
                raise ActionFailed(f"{item.path} already exists and overwrite is false")
            make_dirs(ctx, target.parent)
            existed = target.exists()
            data = item.content.encode(item.encoding)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            fd = os.open(target, flags, DEFAULT_FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if item.permissions is not None:
                target.chmod(mode_bits(item.permissions))
            elif not existed:
                target.chmod(DEFAULT_FILE_MODE)
            apply_owner(ctx, target, item.owner, item.group)
        return {}


class CreateFolderItem(InputModel):
    path: PathText
    owner: str | None = None
    group: str | None = None
    permissions: Mode | None = None
    overwrite: bool = True


class CreateFolder(Action):
    """Creates folders with their parents; an existing folder is fine unless ``overwrite: false``."""

    name = "CreateFolder"

    class Inputs(RootModel[list[CreateFolderItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if target.exists() and not target.is_dir():
                raise ActionFailed(f"{item.path} exists and is not a folder")
            if target.is_dir() and not item.overwrite:
                raise ActionFailed(f"{item.path} already exists and overwrite is false")
            make_dirs(ctx, target, DEFAULT_DIR_MODE)
            if item.permissions is not None:
                target.chmod(mode_bits(item.permissions))
            apply_owner(ctx, target, item.owner, item.group)
        return {}


class AppendFileItem(InputModel):
    path: PathText
    content: str = ""
    encoding: Encoding = "utf-8"


class AppendFile(Action):
    """Appends text to an existing file."""

    name = "AppendFile"

    class Inputs(RootModel[list[AppendFileItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            target = host_path(ctx, item.path)
            if not target.is_file():
                raise ActionFailed(f"{item.path}: no such file")
            with open(target, "ab") as fh:
                fh.write(item.content.encode(item.encoding))
        return {}


class CreateSymlinkItem(InputModel):
    path: PathText
    target: PathText
    force: bool = False


class CreateSymlink(Action):
    """Creates a symbolic link to an existing target; ``force`` replaces an existing link."""

    name = "CreateSymlink"

    class Inputs(RootModel[list[CreateSymlinkItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            link = host_path(ctx, item.path, follow_last=False)
            base = image_path(ctx, link.parent)
            target_inside = (
                item.target if item.target.startswith("/") else f"{base.rstrip('/')}/{item.target}"
            )
            if not host_path(ctx, target_inside).exists():
                raise ActionFailed(f"symlink target {item.target} does not exist")
            if link.is_symlink():
                if not item.force:
                    raise ActionFailed(f"{item.path} already exists (set force: true to replace the link)")
                link.unlink()
            elif link.exists():
                raise ActionFailed(f"{item.path} exists and is not a symbolic link")
            make_dirs(ctx, link.parent)
            link.symlink_to(item.target)
        return {}
