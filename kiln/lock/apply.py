"""Making apt use a lock repository: in mmdebstrap's bootstrap and in a step's sandbox.

Neither leaves a trace in the image. mmdebstrap gets the source and the pins from setup hooks and
loses them again in a customize hook. A step's sandbox sees the repository and its apt files through
a read-only bind on the sandbox's private ``/tmp`` (a bind's mount point elsewhere in the root would
be created in the layer) and an ``APT_CONFIG`` file that points apt's *main* sources list and *main*
preferences file at them; ``/etc/apt/sources.list.d`` and ``preferences.d`` stay the image's own, so
a step can still add a repository there.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from kiln.lock.repo import LockedRepo
from kiln.sandbox.bwrap import Bind

HOOK_LIST = "/etc/apt/sources.list.d/zz-kiln-lock.list"
HOOK_PREF = "/etc/apt/preferences.d/zz-kiln-lock.pref"


def mmdebstrap_lock_args(repo: LockedRepo) -> list[str]:
    """Extra mmdebstrap arguments that bootstrap exactly the locked versions.

    Put them after Kiln's own hooks (the package-cache ``sync-in``/``sync-out``). apt runs outside the
    chroot in mmdebstrap, so the source is the repository's host path with the ``copy`` method
    (the .debs are copied into the chroot's archive directory, where dpkg inside finds them).
    """
    source = repo.root / "mmdebstrap.list"
    source.write_text(repo.source_line(repo.repo, method="copy") + "\n", encoding="utf-8")
    q = shlex.quote
    return [
        '--setup-hook=mkdir -p "$1"/etc/apt/sources.list.d "$1"/etc/apt/preferences.d',
        f'--setup-hook=cp {q(str(source))} "$1"{HOOK_LIST}',
        f'--setup-hook=cp {q(str(repo.preferences_path))} "$1"{HOOK_PREF}',
        f'--customize-hook=rm -f "$1"{HOOK_LIST} "$1"{HOOK_PREF}',
    ]


@dataclass(frozen=True)
class SandboxLock:
    """What a step's sandbox needs to install locked versions: add to SandboxOptions.binds/env."""

    binds: tuple[Bind, ...]
    env: dict[str, str] = field(default_factory=dict)


def _image_file(root: Path, rel: str) -> str:
    """Text of an apt file of the image ('' if absent or a symlink, which could point out of the root)."""
    path = root / rel
    if path.is_symlink() or not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text if text.endswith("\n") or not text else text + "\n"


def sandbox_lock(repo: LockedRepo, root: Path) -> SandboxLock:
    """Binds and environment for a step in ``root``: apt sees the image's sources plus the lock repository,
    and the image's preferences plus the lock pins.

    Call it for each step (it reads the image's current ``/etc/apt/sources.list``). A step that edits
    ``/etc/apt/sources.list`` itself keeps the edit in its layer, but apt in that same step reads the
    sources as they were when the step started; ``sources.list.d`` is read live.
    """
    mount = repo.mount_point
    sources = _image_file(root, "etc/apt/sources.list") + repo.source_line() + "\n"
    preferences = _image_file(root, "etc/apt/preferences")
    preferences = (preferences + "\n" if preferences else "") + repo.preferences
    tag = hashlib.sha256((sources + "\0" + preferences).encode()).hexdigest()[:16]
    folder = repo.root / f"apt-{tag}"
    folder.mkdir(exist_ok=True)
    (folder / "sources.list").write_text(sources, encoding="utf-8")
    (folder / "preferences").write_text(preferences, encoding="utf-8")
    (folder / "apt.conf").write_text(
        f'Dir::Etc::SourceList "{mount}/{folder.name}/sources.list";\n'
        f'Dir::Etc::Preferences "{mount}/{folder.name}/preferences";\n',
        encoding="utf-8",
    )
    folder.chmod(0o755)
    return SandboxLock(
        binds=(Bind(repo.root, mount, readonly=True),),
        env={"APT_CONFIG": f"{mount}/{folder.name}/apt.conf"},
    )
