"""Read an OCI image layout: pick the image (by tag or the only one), load its manifest and config, and
open its layers as verified tar streams.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from kiln.errors import KilnError
from kiln.outputs.oci import MEDIA_INDEX, MEDIA_LAYER_GZIP, MEDIA_MANIFEST, REF_NAME

MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
GZIP_LAYERS = frozenset({MEDIA_LAYER_GZIP, DOCKER_LAYER_GZIP})
TAR_LAYERS = frozenset({MEDIA_LAYER_TAR})


class LayoutError(KilnError):
    """An OCI layout is missing, malformed, or does not hold the requested image."""


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    @classmethod
    def parse(cls, data: Any, where: str) -> Descriptor:
        try:
            digest = str(data["digest"])
            algorithm, _, hexdigest = digest.partition(":")
            if (
                algorithm != "sha256"
                or len(hexdigest) != 64
                or not all(c in "0123456789abcdef" for c in hexdigest)
            ):
                raise ValueError(f"unsupported digest {digest!r}")
            return cls(str(data["mediaType"]), digest, int(data["size"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LayoutError(f"{where}: invalid descriptor: {exc}") from None


@dataclass(frozen=True)
class LayoutImage:
    """One image inside a layout."""

    layout: Path
    manifest_digest: str
    manifest: dict[str, Any]
    config_digest: str
    config: dict[str, Any]
    layers: tuple[Descriptor, ...]

    def blob(self, digest: str) -> Path:
        return self.layout / "blobs" / "sha256" / digest.removeprefix("sha256:")

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def created_epoch(self) -> int | None:
        created = self.config.get("created")
        if not created:
            return None
        return int(datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp())


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise LayoutError(f"{what} missing: {path}") from None
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{what} unreadable: {path}: {exc}") from None


def _verified_json(layout: Path, desc: Descriptor, what: str) -> dict[str, Any]:
    path = layout / "blobs" / "sha256" / desc.digest.removeprefix("sha256:")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LayoutError(f"{what} blob missing: {path}") from None
    if "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
        raise LayoutError(f"{what} blob {desc.digest} does not match its digest (corrupt layout)")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise LayoutError(f"{what} {desc.digest} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise LayoutError(f"{what} {desc.digest} is not a JSON object")
    return doc


def _select(layout: Path, index: dict[str, Any], tag: str | None, arch: str) -> Descriptor:
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise LayoutError(f"{layout}: index.json lists no manifests")
    if tag is not None:
        found = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == tag]
        if not found:
            tags = sorted(str((m.get("annotations") or {}).get(REF_NAME)) for m in manifests)
            raise LayoutError(f"{layout}: no image tagged {tag!r} (tags: {', '.join(tags)})")
        manifests = found
    if len(manifests) > 1:
        for_arch = [m for m in manifests if (m.get("platform") or {}).get("architecture") == arch]
        if len(for_arch) != 1:
            raise LayoutError(f"{layout}: {len(manifests)} images and no tag to choose one")
        manifests = for_arch
    return Descriptor.parse(manifests[0], f"{layout}/index.json")


def open_layout(layout: Path, tag: str | None = None, *, architecture: str = "amd64") -> LayoutImage:
    """The image tagged ``tag`` (or the only one) in the layout at ``layout``; nested indexes are
    followed by ``architecture``. Manifest and config are verified against their digests."""
    layout = layout.absolute()
    marker = _load_json(layout / "oci-layout", "oci-layout file")
    if not isinstance(marker, dict) or "imageLayoutVersion" not in marker:
        raise LayoutError(f"{layout}: not an OCI image layout (oci-layout has no imageLayoutVersion)")
    index = _load_json(layout / "index.json", "index.json")
    desc = _select(layout, index, tag, architecture)
    for _ in range(4):
        if desc.media_type not in (MEDIA_INDEX, DOCKER_MANIFEST_LIST):
            break
        desc = _select(layout, _verified_json(layout, desc, "index"), None, architecture)
    if desc.media_type not in (MEDIA_MANIFEST, DOCKER_MANIFEST):
        raise LayoutError(f"{layout}: {desc.digest} has unsupported media type {desc.media_type}")
    manifest = _verified_json(layout, desc, "manifest")
    config_desc = Descriptor.parse(manifest.get("config"), f"manifest {desc.digest}: config")
    config = _verified_json(layout, config_desc, "config")
    layers = tuple(
        Descriptor.parse(item, f"manifest {desc.digest}: layers[{i}]")
        for i, item in enumerate(manifest.get("layers") or [])
    )
    for layer in layers:
        if layer.media_type not in GZIP_LAYERS | TAR_LAYERS:
            raise LayoutError(f"{layout}: layer {layer.digest} has unsupported media type {layer.media_type}")
    return LayoutImage(layout, desc.digest, manifest, config_desc.digest, config, layers)


class _VerifyingReader(io.RawIOBase):
    """Reads a blob, hashing everything; :meth:`finish` checks size and digest after the consumer."""

    def __init__(self, fh: IO[bytes], desc: Descriptor) -> None:
        super().__init__()
        self._fh = fh
        self._desc = desc
        self._hash = hashlib.sha256()
        self._count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._fh.readinto(buffer)  # type: ignore[attr-defined]
        assert isinstance(count, int)
        self._hash.update(memoryview(buffer)[:count])
        self._count += count
        return count

    def finish(self) -> None:
        while self.read(1 << 20):
            pass
        if self._count != self._desc.size or "sha256:" + self._hash.hexdigest() != self._desc.digest:
            raise LayoutError(
                f"layer blob {self._desc.digest} does not match its descriptor (corrupt layout)"
            )


class _GuardedStream(io.RawIOBase):
    """Turns decompression errors into a :class:`LayoutError` naming the blob."""

    def __init__(self, stream: IO[bytes], digest: str) -> None:
        super().__init__()
        self._stream = stream
        self._digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._stream.read(len(buffer))
        except (OSError, EOFError, zlib.error) as exc:
            raise LayoutError(f"layer blob {self._digest} is corrupt: {exc}") from None
        buffer[: len(data)] = data
        return len(data)


@contextmanager
def open_layer(image: LayoutImage, desc: Descriptor) -> Iterator[IO[bytes]]:
    """The uncompressed tar stream of a layer; the blob's digest is checked when the block ends."""
    path = image.blob(desc.digest)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise LayoutError(f"layer blob missing: {path}") from None
    with fh:
        reader = _VerifyingReader(fh, desc)
        raw = cast(IO[bytes], io.BufferedReader(reader, 1 << 20))
        if desc.media_type in GZIP_LAYERS:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                stream = cast(IO[bytes], io.BufferedReader(_GuardedStream(cast(IO[bytes], gz), desc.digest)))
                yield stream
                while stream.read(1 << 20):
                    pass
        else:
            yield raw
        reader.finish()


@dataclass(frozen=True)
class LayoutLayer:
    """One layer of a layout image, as :func:`kiln.layers.unpack.unpack_layers` reads it."""

    image: LayoutImage
    desc: Descriptor

    @property
    def digest(self) -> str:
        return self.desc.digest

    def open(self) -> AbstractContextManager[IO[bytes]]:
        return open_layer(self.image, self.desc)


def layer_sources(image: LayoutImage) -> list[LayoutLayer]:
    """The image's layers, bottom first."""
    return [LayoutLayer(image, desc) for desc in image.layers]
