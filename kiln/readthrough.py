"""Reading artifacts and evidence recorded on another machine: from the shared store, by digest.

The catalog records each artifact at the path the building worker wrote it. A reader with that data
directory (the worker itself) finds it there; any other, with ``KILN_STORE_URL`` set, fetches it from
the shared store (streamed, verified against its digest, written atomically) into its own data
directory, which then serves as a read-through cache:

- evidence files (and any blob) land in the local blob store, ``blobs/sha256/<hex>``;
- an artifact file lands at ``remote/<image>/<version>-<build>/<file name>`` (the same last three
  path components as on the worker, so provenance subjects still match by name);
- an OCI layout is rebuilt there from its blobs (manifest, config, layers, each verified) and the
  ``index.json`` the worker published beside them, which must name exactly that manifest.

Without ``KILN_STORE_URL`` the local path is all there is, as before.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.errors import KilnError
from kiln.objectstore import ObjectStore, fetch, index_key, open_object_store

if TYPE_CHECKING:
    from kiln.catalog.schemas import ImageRecord
    from kiln.models import Artifact
    from kiln.store import Store

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


def shared_store(store: Store) -> ObjectStore | None:
    return open_object_store(store.shared, store.home) if store.shared else None


def blob_file(store: Store, digest: str) -> Path:
    """The blob ``digest`` on this machine, fetched from the shared store when missing here."""
    local = store.blob_path(digest)
    shared = shared_store(store)
    if local.is_file() or shared is None:
        return local
    return fetch(shared, digest, local)


def cache_path(store: Store, recorded: str) -> Path:
    """Where a remote artifact is cached: ``remote/`` + the recorded path's last three components."""
    parts = [p for p in Path(recorded).parts[-3:] if p not in ("", "/", "..", ".")]
    return store.home.joinpath("remote", *parts)


def artifact_file(store: Store, artifact: Artifact) -> Path:
    """Where ``artifact`` can be read on this machine (see the module docstring)."""
    local = store.artifact_path(artifact.path)
    shared = shared_store(store)
    if shared is None or (local.exists() and local.is_relative_to(store.home)):
        return local
    dest = cache_path(store, artifact.path)
    if artifact.kind == "oci":
        if not (dest / "index.json").is_file():
            _fetch_layout(store, shared, artifact.digest, dest)
        return dest
    if not dest.is_file():
        if not shared.has(artifact.digest):
            raise KilnError(f"artifact {artifact.kind} ({artifact.digest}) is neither at {local} nor in "
                            f"{shared.url}")  # fmt: skip
        local_blob = store.blob_path(artifact.digest)
        if local_blob.is_file():  # already fetched (or built) here under its digest
            _link_or_copy(local_blob, dest)
        else:
            fetch(shared, artifact.digest, dest)
    return dest


def localized(store: Store, image: ImageRecord) -> ImageRecord:
    """``image`` with every artifact and evidence path one that exists on this machine (fetched)."""
    artifacts = [a.model_copy(update={"path": str(artifact_file(store, a))}) for a in image.artifacts]
    evidence = [e.model_copy(update={"path": str(blob_file(store, e.digest))}) for e in image.evidence]
    return image.model_copy(update={"artifacts": artifacts, "evidence": evidence})


def _link_or_copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        dest.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, dest)


def _fetch_layout(store: Store, shared: ObjectStore, manifest_digest: str, dest: Path) -> None:
    """Rebuild the OCI layout of ``manifest_digest`` at ``dest`` (atomically: all of it or nothing)."""
    index = shared.get_named(index_key(manifest_digest))
    if index is None:
        raise KilnError(f"the OCI layout of {manifest_digest} is not in {shared.url} (no index)")
    try:
        listed = [m["digest"] for m in json.loads(index)["manifests"]]
    except (ValueError, KeyError, TypeError):
        listed = []
    if listed != [manifest_digest]:
        raise KilnError(f"the OCI index of {manifest_digest} in {shared.url} does not name that manifest")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        blobs = tmp / "blobs" / "sha256"
        manifest = fetch(shared, manifest_digest, blobs / manifest_digest.removeprefix("sha256:"))
        try:
            doc = json.loads(manifest.read_bytes())
            wanted = [str(doc["config"]["digest"]), *(str(layer["digest"]) for layer in doc["layers"])]
        except (ValueError, KeyError, TypeError):
            raise KilnError(f"{manifest_digest} in {shared.url} is not an image manifest") from None
        for digest in wanted:
            target = blobs / digest.removeprefix("sha256:")
            if target.exists():
                continue
            local_blob = store.blob_path(digest)
            if local_blob.is_file():
                _link_or_copy(local_blob, target)
            else:
                fetch(shared, digest, target)
        (tmp / "oci-layout").write_bytes(OCI_LAYOUT)
        (tmp / "index.json").write_bytes(index)
        tmp.chmod(0o755)
        try:
            tmp.rename(dest)
        except OSError:  # another reader got there first
            if not (dest / "index.json").is_file():
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)


def readable_artifact(store: Store, artifact: Artifact) -> Path:
    """:func:`artifact_file`, or the recorded path when it can be read nowhere (checks then say so)."""
    try:
        return artifact_file(store, artifact)
    except KilnError:
        return store.artifact_path(artifact.path)


def readable_blob(store: Store, digest: str) -> Path:
    """:func:`blob_file`, or the local blob path when the blob can be read nowhere."""
    try:
        return blob_file(store, digest)
    except KilnError:
        return store.blob_path(digest)
