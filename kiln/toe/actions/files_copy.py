"""CopyFile, CopyFolder, MoveFile, MoveFolder: ``*`` after the last separator, trailing ``/`` = into."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from pydantic import RootModel

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.fileutil import (
    PathText,
    copy_file,
    copy_tree,
    destination_for,
    expand,
    has_wildcard,
    make_dirs,
)


class TransferItem(InputModel):
    source: PathText
    destination: PathText
    overwrite: bool = True


class _Transfer(Action):
    """Shared logic; subclasses set ``kind`` and ``move``."""

    kind: str = "file"
    move: bool = False

    class Inputs(RootModel[list[TransferItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        for item in inputs.root:
            sources = expand(ctx, item.source, kind=self.kind, follow_last=not self.move)
            for source in sources:
                self.transfer(ctx, source, item, many=has_wildcard(item.source))
        return {}

    def transfer(self, ctx: ActionContext, source: Path, item: TransferItem, *, many: bool) -> None:
        if self.kind == "folder" and source == ctx.root:
            raise ActionFailed(f"{item.source}: cannot {self.verb} the root folder")
        dest_inside, dest = destination_for(ctx, source, item.destination, many=many)
        if dest == source:
            raise ActionFailed(f"{item.source} and {dest_inside} are the same {self.kind}")
        if self.kind == "folder" and dest.is_relative_to(source):
            raise ActionFailed(f"cannot {self.verb} {item.source} into itself ({dest_inside})")
        if dest.exists() or dest.is_symlink():
            if not item.overwrite:
                raise ActionFailed(f"{dest_inside} already exists and overwrite is false")
            if self.kind == "file" and dest.is_dir():
                raise ActionFailed(f"{dest_inside} is a folder")
        single = self.kind == "file" or source.is_symlink()  # a moved link is moved as a link
        if single and source.is_symlink() and dest.is_dir() and not dest.is_symlink():
            raise ActionFailed(f"{dest_inside} is a folder")
        make_dirs(ctx, dest.parent)
        if self.move and self._rename(source, dest):
            return
        if single:
            copy_file(source, dest)
        else:
            copy_tree(ctx, source, dest_inside)
        if self.move:
            if single:
                source.unlink()
            else:
                shutil.rmtree(source)

    @property
    def verb(self) -> str:
        return "move" if self.move else "copy"

    @staticmethod
    def _rename(source: Path, dest: Path) -> bool:
        """A plain rename when the destination is free; False when a copy is needed (EXDEV...)."""
        if dest.exists() and (dest.is_dir() and not dest.is_symlink()):
            return False
        try:
            if dest.is_symlink():
                dest.unlink()
            source.rename(dest)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.ENOTEMPTY, errno.EEXIST):
                return False
            raise
        return True


class CopyFile(_Transfer):
    name = "CopyFile"
    kind = "file"


class CopyFolder(_Transfer):
    name = "CopyFolder"
    kind = "folder"


class MoveFile(_Transfer):
    name = "MoveFile"
    kind = "file"
    move = True


class MoveFolder(_Transfer):
    name = "MoveFolder"
    kind = "folder"
    move = True
