"""OCI image layout (image-spec 1.1) from finished layer blobs.

JSON documents are serialised canonically (sorted keys, no insignificant whitespace), so the same layers,
config and annotations always give the same manifest digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kiln.errors import KilnError
from kiln.layers.tar import LayerBlob
from kiln.store import link_or_copy

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"

# image-spec annotations.md: ref.name grammar (components separated by "/").
_REF_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_RE = re.compile(rf"^{_REF_COMPONENT}(?:/{_REF_COMPONENT})*$")
_PORT_RE = re.compile(r"^[0-9]{1,5}(?:/(?:tcp|udp|sctp))?$")


class OciError(KilnError):
    """An OCI layout cannot be written from these inputs."""


def rfc3339(moment: datetime) -> str:
    """UTC timestamp as OCI documents write it (``2024-01-02T03:04:05Z``)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_datetime(epoch: int) -> datetime:
    """SOURCE_DATE_EPOCH as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=UTC)


class ImageConfig(BaseModel):
    """The runtime part of an image config (what ``docker inspect`` shows under ``Config``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    created: datetime
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    user: str | None = None
    working_dir: str | None = None
    exposed_ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = Field(default_factory=dict)
    stop_signal: str | None = None

    @field_validator("env")
    @classmethod
    def _env_pairs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if "=" not in item or item.startswith("="):
                raise ValueError(f"environment entry {item!r} must look like NAME=value")
        return value

    @field_validator("exposed_ports")
    @classmethod
    def _ports(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for port in value:
            if not _PORT_RE.match(port) or not 0 < int(port.split("/")[0]) < 65536:
                raise ValueError(f"exposed port {port!r} must look like 80, 80/tcp or 53/udp")
        return value

    def runtime_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        if self.env:
            cfg["Env"] = list(self.env)
        if self.entrypoint is not None:
            cfg["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            cfg["Cmd"] = list(self.cmd)
        if self.user:
            cfg["User"] = self.user
        if self.working_dir:
            cfg["WorkingDir"] = self.working_dir
        if self.exposed_ports:
            cfg["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in self.exposed_ports}
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        if self.stop_signal:
            cfg["StopSignal"] = self.stop_signal
        return cfg


@dataclass(frozen=True)
class History:
    """One ``history`` entry of the config: a component (or the parent) and whether it added a layer."""

    created_by: str
    comment: str = ""
    empty_layer: bool = False


@dataclass(frozen=True)
class OciImage:
    """A written layout: where it is and the digests that identify it."""

    path: Path
    manifest_digest: str
    config_digest: str
    size: int
    """Sum of all blob sizes (layers, config, manifest) in bytes."""
    layers: tuple[LayerBlob, ...]


def canonical_json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_document(
    layers: Sequence[LayerBlob], config: ImageConfig, history: Sequence[History]
) -> dict[str, Any]:
    """The image config JSON (image-spec ``config.md``)."""
    with_layers = sum(1 for h in history if not h.empty_layer)
    if history and with_layers != len(layers):
        raise OciError(
            f"{with_layers} history entries add a layer but the image has {len(layers)} layers",
            hint="mark history entries of components that changed nothing with empty_layer=True",
        )
    created = rfc3339(config.created)
    doc: dict[str, Any] = {
        "created": created,
        "architecture": config.architecture,
        "os": config.os,
        "config": config.runtime_config(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": created, "created_by": h.created_by}
            | ({"comment": h.comment} if h.comment else {})
            | ({"empty_layer": True} if h.empty_layer else {})
            for h in history
        ],
    }
    if config.variant:
        doc["variant"] = config.variant
    return doc


def _descriptor(media_type: str, digest: str, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def _check_inputs(layers: Sequence[LayerBlob], annotations: Mapping[str, str], tag: str) -> None:
    if not _REF_RE.match(tag):
        raise OciError(f"invalid OCI reference name {tag!r}", hint="use letters, digits and . _ - : @ +")
    for key, value in annotations.items():
        if not key or not isinstance(value, str):
            raise OciError(f"invalid annotation {key!r}: {value!r} (keys and values must be strings)")
    for layer in layers:
        if not layer.path.is_file():
            raise OciError(f"layer blob missing: {layer.path}")
        if layer.path.stat().st_size != layer.size:
            raise OciError(f"layer blob {layer.path} has changed size since it was written")


def write_oci_layout(
    dest: Path,
    layers: Sequence[LayerBlob],
    config: ImageConfig,
    *,
    history: Sequence[History],
    annotations: Mapping[str, str],
    tag: str,
) -> OciImage:
    """Write an OCI image layout at ``dest`` (replacing what was there) holding one tagged image.

    Layer files are hard-linked when on the same filesystem, else copied. The layout is assembled in a
    temporary directory next to ``dest`` and renamed into place, so ``dest`` is never half-written.
    """
    _check_inputs(layers, annotations, tag)
    config_bytes = canonical_json(config_document(layers, config, history))
    config_digest = _digest(config_bytes)
    manifest_annotations = {CREATED: rfc3339(config.created), **annotations}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": _descriptor(MEDIA_CONFIG, config_digest, len(config_bytes)),
        "layers": [_descriptor(MEDIA_LAYER_GZIP, layer.digest, layer.size) for layer in layers],
        "annotations": manifest_annotations,
    }
    manifest_bytes = canonical_json(manifest)
    manifest_digest = _digest(manifest_bytes)
    platform = {"architecture": config.architecture, "os": config.os}
    if config.variant:
        platform["variant"] = config.variant
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [
            _descriptor(
                MEDIA_MANIFEST,
                manifest_digest,
                len(manifest_bytes),
                annotations={REF_NAME: tag},
                platform=platform,
            )
        ],
    }
    dest = dest.absolute()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        size = 0
        for layer in layers:
            target = blobs / layer.digest.removeprefix("sha256:")
            if not target.exists():
                link_or_copy(layer.path, target)
                size += layer.size
        for data, digest in ((config_bytes, config_digest), (manifest_bytes, manifest_digest)):
            (blobs / digest.removeprefix("sha256:")).write_bytes(data)
            size += len(data)
        (tmp / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        (tmp / "index.json").write_bytes(canonical_json(index))
        tmp.chmod(0o755)
        _swap_into_place(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return OciImage(dest, manifest_digest, config_digest, size, tuple(layers))


def _swap_into_place(new: Path, dest: Path) -> None:
    """Rename ``new`` to ``dest``; an existing ``dest`` is moved aside first and removed afterwards."""
    if not dest.exists() and not dest.is_symlink():
        new.rename(dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    try:
        dest.rename(old / "previous")
        try:
            new.rename(dest)
        except BaseException:
            (old / "previous").rename(dest)
            raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
