"""Where steps run: a root filesystem in the bubblewrap sandbox, or the host itself.

A target runs argv lists and says where its root is; file actions work on the host path of that
root directly (through :mod:`kiln.sandbox.paths`), only processes go through ``execute``.
Targets that can show a host file to their processes without writing into the image implement
``stage`` (scripts for ExecuteBash); for any other target the file goes into the root and is
removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from kiln.sandbox.bwrap import Bind, SandboxOptions, base_env, sandbox_argv
from kiln.sandbox.paths import inside_path, resolve_in_root
from kiln.sandbox.run import Completed, OutputCallback, run

STAGE_MOUNT = "/tmp/.kiln-toe"  # under the sandbox's private /tmp: leaves no trace in the image


class Target(Protocol):
    """Where steps run."""

    root: Path

    def execute(
        self, argv: list[str], *, env: Mapping[str, str], timeout: float | None, on_output: OutputCallback
    ) -> Completed: ...


@runtime_checkable
class StagingTarget(Protocol):
    """A target that can show a file to its processes without writing it into the image."""

    def stage(self, name: str, data: bytes) -> tuple[Path, str]:
        """Write ``data``; returns (host path, path seen by processes)."""
        ...


class _Scratch:
    """A host temp dir removed when its owner is collected or closed."""

    def __init__(self, prefix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, True)

    def close(self) -> None:
        self._finalizer()


class RootfsTarget:
    """A root filesystem directory; processes run in the bubblewrap sandbox with it as ``/``."""

    def __init__(self, root: Path, options: SandboxOptions = SandboxOptions()) -> None:
        self.root = Path(os.path.abspath(root))  # noqa: PTH100
        self.options = options
        self._scratch: _Scratch | None = None

    def _scratch_dir(self) -> Path:
        if self._scratch is None:
            self._scratch = _Scratch("kiln-toe-stage-")
        return self._scratch.path

    def stage(self, name: str, data: bytes) -> tuple[Path, str]:
        host = self._scratch_dir() / name
        host.write_bytes(data)
        return host, f"{STAGE_MOUNT}/{name}"

    def execute(
        self, argv: list[str], *, env: Mapping[str, str], timeout: float | None, on_output: OutputCallback
    ) -> Completed:
        options = replace(self.options, env={**self.options.env, **env})
        if self._scratch is not None:
            options = replace(options, binds=[*options.binds, Bind(self._scratch.path, STAGE_MOUNT)])
        return run(sandbox_argv(self.root, argv, options), timeout=timeout, on_output=on_output, check=False)

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    def __enter__(self) -> RootfsTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HostTarget:
    """This machine, like awstoe on an instance. Steps change the host: callers must ask for it."""

    root = Path("/")

    def __init__(self) -> None:
        self._scratch: _Scratch | None = None

    def stage(self, name: str, data: bytes) -> tuple[Path, str]:
        if self._scratch is None:
            self._scratch = _Scratch("kiln-toe-stage-")
        host = self._scratch.path / name
        host.write_bytes(data)
        return host, str(host)

    def execute(
        self, argv: list[str], *, env: Mapping[str, str], timeout: float | None, on_output: OutputCallback
    ) -> Completed:
        full_env = {**base_env(), **env}
        full_env.pop("container", None)
        return run(argv, env=full_env, timeout=timeout, on_output=on_output, check=False, cwd=Path("/"))

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    def __enter__(self) -> HostTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def staged_file(target: Target, name: str, data: bytes) -> Iterator[str]:
    """Make ``data`` readable by the target's processes; yields the path they see; always cleaned up."""
    if isinstance(target, StagingTarget):
        host, seen = target.stage(name, data)
        try:
            yield seen
        finally:
            host.unlink(missing_ok=True)
        return
    folder = resolve_in_root(target.root, f"/var/tmp/kiln-toe-{uuid.uuid4().hex}")
    folder.mkdir(mode=0o700, parents=True)
    try:
        (folder / name).write_bytes(data)
        yield inside_path(target.root, folder / name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
