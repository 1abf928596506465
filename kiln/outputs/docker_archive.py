"""``docker-archive``: the ``docker save`` format (``manifest.json`` + config + one tar per layer), what
``docker load``, ``podman load`` and ``skopeo docker-archive:`` read.

Layers are stored uncompressed, as ``docker save`` does, so every loader accepts them; each layer is
checked against its ``diff_id`` on the way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

from kiln.errors import KilnError
from kiln.outputs.archive import Archive, DeterministicTar
from kiln.outputs.layout import LayoutError, LayoutImage, open_layer, open_layout

# Docker reference grammar (distribution/reference): [domain[:port]/]path-components:tag
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)"
_REPO_TAG = re.compile(rf"^{_DOMAIN}?{_COMPONENT}(?:/{_COMPONENT})*:[\w][\w.-]{{0,127}}$")


def check_repo_tag(value: str) -> str:
    if not _REPO_TAG.match(value) or len(value.rpartition(":")[0]) > 255:
        raise KilnError(
            f"invalid image reference {value!r} for a docker archive",
            hint="use NAME:TAG with a lowercase name, e.g. example/debian-web:1.0.0",
        )
    return value


def _uncompressed_sizes(image: LayoutImage) -> list[int]:
    """Size of each layer's tar (a tar header needs it up front); checks every ``diff_id`` too."""
    diff_ids = image.diff_ids
    if len(diff_ids) != len(image.layers):
        raise LayoutError(f"{image.layout}: {len(image.layers)} layers but {len(diff_ids)} diff_ids")
    sizes = []
    for desc, diff_id in zip(image.layers, diff_ids, strict=True):
        digest, size = hashlib.sha256(), 0
        with open_layer(image, desc) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        if "sha256:" + digest.hexdigest() != diff_id:
            raise LayoutError(f"layer {desc.digest} does not match its diff_id {diff_id}")
        sizes.append(size)
    return sizes


def write_docker_archive(
    layout: Path,
    dest: Path,
    *,
    repo_tags: Sequence[str],
    tag: str | None = None,
    epoch: int | None = None,
) -> Archive:
    """Write the image tagged ``tag`` (or the only one) of ``layout`` as a docker archive at ``dest``,
    named by ``repo_tags`` (``name:tag`` references, may be empty)."""
    tags = [check_repo_tag(t) for t in repo_tags]
    image = open_layout(layout, tag)
    if epoch is None:
        epoch = image.created_epoch or 0
    sizes = _uncompressed_sizes(image)
    config_name = image.config_digest.removeprefix("sha256:") + ".json"
    layer_names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in image.diff_ids]
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]
    entries: dict[str, tuple[int, int]] = {}  # name -> (layer index, size); duplicates stored once
    for index, (name, size) in enumerate(zip(layer_names, sizes, strict=True)):
        entries.setdefault(name, (index, size))
    with DeterministicTar(dest, epoch) as tar:
        tar.add_file(config_name, image.blob(image.config_digest))
        for name in sorted(entries):
            index, size = entries[name]
            tar.add_dir(name.rpartition("/")[0])
            with open_layer(image, image.layers[index]) as stream:
                tar.add_stream(name, size, stream)
        # No legacy "repositories" file: it names v1 layer ids, which this format has no use for.
        tar.add_bytes("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    assert tar.result is not None
    return tar.result
