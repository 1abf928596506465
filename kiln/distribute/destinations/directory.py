"""Directory destination: ``PATH/NAME/VERSION-BUILD/`` with every file, ``SHA256SUMS`` and ``manifest.json``.

Written under a temporary name beside the destination and renamed into place, so a reader sees the
old version or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from kiln.distribute.base import Destination, DistributionError, External, PreflightFailed
from kiln.distribute.files import sha256sums
from kiln.distribute.spec import DirectoryTarget

CHUNK = 1 << 20


def _copy_hashing(source: Path, target: Path) -> str:
    h = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, open(target, "wb") as dst:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            h.update(chunk)
            dst.write(chunk)
    return h.hexdigest()


class Directory(Destination):
    kind = "directory"
    Spec = DirectoryTarget
    spec: DirectoryTarget

    @property
    def root(self) -> Path:
        path = Path(self.spec.path).expanduser()
        return path if path.is_absolute() else self.ctx.base_dir / path

    @property
    def destination(self) -> Path:
        image = self.ctx.image
        return self.root / image.name / f"{image.version}-{image.build}"

    def preflight(self) -> None:
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise PreflightFailed(
                f"target {self.spec.name}: cannot write to {existing} (to create {self.root})",
                hint="create the folder or fix its permissions",
            )

    def publish(self) -> External:
        dest = self.destination
        manifest = self.ctx.manifest()
        external: External = {"path": str(dest), "manifest_sha256": hashlib.sha256(manifest).hexdigest()}
        if (dest / "manifest.json").is_file() and (dest / "manifest.json").read_bytes() == manifest:
            self.ctx.log(f"{dest} already holds this image version")
            return external
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()  # an image recorded without files still gets its manifest.json and SHA256SUMS
            sums: list[tuple[str, str]] = []
            for file in self.ctx.files():
                digest = _copy_hashing(file.source, tmp / file.name)
                if file.digest and file.digest != f"sha256:{digest}":
                    raise DistributionError(
                        f"{file.source} changed: its sha256 is {digest}, the catalog says {file.digest}"
                    )
                sums.append((digest, file.name))
            (tmp / "manifest.json").write_bytes(manifest)
            sums.append((hashlib.sha256(manifest).hexdigest(), "manifest.json"))
            (tmp / "SHA256SUMS").write_bytes(sha256sums(sums))
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            if dest.exists():
                dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        external["files"] = len(sums)
        return external

    def unpublish(self, external: External) -> list[str]:
        path = Path(external.get("path", self.destination))
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            return [f"{path}: {exc.strerror}"]
        return []
