"""Where steps run: a root filesystem in the bubblewrap sandbox, or the host itself.

A target runs argv lists and says where its root is; file actions work on the host path of that
root directly (through :mod:`kiln.sandbox.paths`), only processes go through ``execute``.

In a root filesystem the sandbox's ``/tmp`` is the image's own ``/tmp`` (not a private tmpfs), as on
an instance: a file that WebDownload puts in ``/tmp`` is there for the next ExecuteBash step. Scripts
are written there too (``/tmp/kiln-toe-<random>/``) and removed when the step ends.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from kiln.sandbox.bwrap import Bind, SandboxOptions, base_env
from kiln.sandbox.launch import run_in_sandbox
from kiln.sandbox.paths import inside_path, resolve_in_root
from kiln.sandbox.run import Completed, OutputCallback, run
from kiln.secrets import with_secret_env


class Target(Protocol):
    """Where steps run."""

    root: Path

    def execute(
        self, argv: list[str], *, env: Mapping[str, str], timeout: float | None, on_output: OutputCallback
    ) -> Completed: ...


def image_tmp(root: Path) -> Path:
    """The image's ``/tmp`` on the host (created, mode 1777, when the image has none)."""
    tmp = resolve_in_root(root, "/tmp")
    if not tmp.is_dir():
        tmp.mkdir(parents=True)
        tmp.chmod(0o1777)
    return tmp


class RootfsTarget:
    """A root filesystem directory; processes run in the bubblewrap sandbox with it as ``/``."""

    def __init__(
        self, root: Path, options: SandboxOptions = SandboxOptions(), secret_env: Sequence[str] = ()
    ) -> None:
        self.root = Path(os.path.abspath(root))  # noqa: PTH100
        self.options = options
        self.secret_env = tuple(secret_env)  # secrets (in options.secrets_dir) also set as variables

    def execute(
        self, argv: list[str], *, env: Mapping[str, str], timeout: float | None, on_output: OutputCallback
    ) -> Completed:
        shared_tmp = Bind(image_tmp(self.root), "/tmp", readonly=False)
        options = replace(
            self.options, env={**self.options.env, **env}, binds=[shared_tmp, *self.options.binds]
        )
        inner = with_secret_env(self.secret_env, argv)
        return run_in_sandbox(self.root, inner, options, timeout=timeout, on_output=on_output, check=False)

    def close(self) -> None:
        """Nothing to release (kept so targets can be used as context managers)."""

    def __enter__(self) -> RootfsTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HostTarget:
    """This machine, like awstoe on an instance. Steps change the host: callers must ask for it."""

    root = Path("/")

    def execute(
        self, argv: list[str], *, env: Mapping[str, str], timeout: float | None, on_output: OutputCallback
    ) -> Completed:
        full_env = {**base_env(), **env}
        full_env.pop("container", None)
        return run(argv, env=full_env, timeout=timeout, on_output=on_output, check=False, cwd=Path("/"))

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> HostTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def staged_file(target: Target, name: str, data: bytes) -> Iterator[str]:
    """Write ``data`` under the image's ``/tmp`` for the target's processes; yields the path they
    see; the file and its private folder are removed however the block ends."""
    folder = image_tmp(target.root) / f"kiln-toe-{uuid.uuid4().hex}"
    folder.mkdir(mode=0o700)
    try:
        path = folder / name
        path.write_bytes(data)
        yield inside_path(target.root, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
