"""Parents that are images: an OCI layout (a catalogued Kiln image's, a local one, or one fetched from
a registry with skopeo) and its root tree for the build's overlay.

    cache/image-parents/<hex>/          hex of the image's manifest digest
        rootfs/                         every layer applied in order (OCI whiteouts honoured)
        image.json                      commit marker (kiln.cachestore); <hex>.lock/.lease beside it
    cache/registry/<hex>/oci/           a registry image copied by digest (skopeo), when needed

The child does not re-pack this tree: its image reuses the parent's layer blobs as they are (same
digests, hard-linked into its layout), and the tree is only the lower layer steps run on.
"""

from __future__ import annotations

import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path

from kiln.cachelock import FileLock
from kiln.cachestore import KeyedCache
from kiln.errors import KilnError
from kiln.layers.tar import LayerBlob
from kiln.layers.unpack import unpack_layers
from kiln.monitor import Monitor
from kiln.outputs.layout import GZIP_LAYERS, LayoutImage, layer_sources, open_layout
from kiln.recipes.parentref import RegistrySource
from kiln.sandbox.run import require_tool, run
from kiln.store import Store

MARKER = "image.json"
FETCH_TIMEOUT = 1800


class ImageParentError(KilnError):
    """An image parent cannot be read, fetched or unpacked."""


@dataclass
class ImageRoot:
    """A parent image's root tree, leased until ``release``."""

    image: LayoutImage
    rootfs: Path
    cached: bool
    lease: FileLock

    def release(self) -> None:
        self.lease.release()


def entries(store: Store) -> KeyedCache:
    return KeyedCache(store.cache / "image-parents", MARKER)


def layer_blobs(image: LayoutImage) -> list[LayerBlob]:
    """The image's layers as blobs a child's layout can hard-link (gzip layers only: a child's
    manifest declares every layer gzip)."""
    if not image.layers:
        raise ImageParentError(f"{image.layout}: image {image.manifest_digest} has no layers to build on")
    diff_ids = image.diff_ids
    if len(diff_ids) != len(image.layers):
        raise ImageParentError(
            f"{image.layout}: the config lists {len(diff_ids)} diff_ids for {len(image.layers)} layers"
        )
    blobs = []
    for desc, diff_id in zip(image.layers, diff_ids, strict=True):
        if desc.media_type not in GZIP_LAYERS:
            raise ImageParentError(
                f"{image.layout}: layer {desc.digest} is {desc.media_type}; a parent's layers must be "
                "gzip-compressed to be reused",
                hint="recompress it, e.g. skopeo copy --dest-compress-format gzip",
            )
        blobs.append(LayerBlob(image.blob(desc.digest), desc.digest, diff_id, desc.size))
    return blobs


def image_root(store: Store, image: LayoutImage, monitor: Monitor) -> ImageRoot:
    """The image's layers applied into one tree, made once per manifest digest and shared by every
    build (leased while in use). Device nodes are not created (kiln.layers.unpack)."""
    cache = entries(store)
    key = image.manifest_digest.removeprefix("sha256:")
    lease = cache.lease(key)
    lease.acquire(shared=True)
    try:
        rootfs = cache.entry_dir(key) / "rootfs"
        if cache.get(key) is not None:
            return ImageRoot(image, rootfs, True, lease)
        with cache.create_lock(key):
            if cache.get(key) is not None:
                return ImageRoot(image, rootfs, True, lease)
            cache.discard(key)
            cache.entry_dir(key).mkdir(parents=True)
            with monitor.stage(
                "parent", f"unpack {len(image.layers)} layers of {image.manifest_digest[:19]}"
            ):
                skipped = unpack_layers(layer_sources(image), rootfs)
            if skipped:
                monitor.info(f"parent: {len(skipped)} device nodes not created (bwrap provides /dev)")
            cache.commit(key, {"digest": image.manifest_digest, "layers": [d.digest for d in image.layers]})
        return ImageRoot(image, rootfs, False, lease)
    except BaseException:
        lease.release()
        raise


def open_parent_layout(path: Path, tag: str | None, architecture: str) -> LayoutImage:
    if not path.is_dir():
        raise ImageParentError(
            f"parent layout {path} does not exist", hint="give an OCI image layout directory"
        )
    return open_layout(path, tag, architecture=architecture)


def _loopback(name: str) -> bool:
    host = name.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetch_registry(store: Store, source: RegistrySource, architecture: str, monitor: Monitor) -> LayoutImage:
    """The registry image pinned by ``source.digest``, copied once into the cache as an OCI layout
    (``--preserve-digests``: the manifest digest stays the one the recipe pins)."""
    key = source.digest.removeprefix("sha256:")
    entry = store.cache / "registry" / key
    layout = entry / "oci"
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(entry.parent / f"{key}.lock"):
        if not (layout / "index.json").is_file():
            shutil.rmtree(entry, ignore_errors=True)
            entry.mkdir(parents=True)
            argv = [require_tool("skopeo"), "copy", "--preserve-digests", "--retry-times", "2",
                    "--override-arch", architecture, "--override-os", "linux"]  # fmt: skip
            if _loopback(source.name):  # a registry on this machine speaks plain HTTP in tests and labs
                argv.append("--src-tls-verify=false")
            with monitor.stage("parent", f"fetch {source.pinned}"):
                try:
                    run([*argv, source.pinned, f"oci:{layout}:parent"], timeout=FETCH_TIMEOUT)
                except BaseException:
                    shutil.rmtree(entry, ignore_errors=True)
                    raise
    image = open_layout(layout, "parent", architecture=architecture)
    if image.manifest_digest != source.digest:
        raise ImageParentError(
            f"parent {source.pinned}: the registry returned manifest {image.manifest_digest}",
            hint="the digest names a manifest list? pin the platform manifest's digest",
        )
    return image
