"""The artifact store shared by every machine of a site: content-addressed objects by sha256 digest.

``KILN_STORE_URL`` chooses it: a local directory (the default: the data directory's ``blobs``) or
``s3://bucket/prefix`` (boto3; any S3-compatible endpoint through boto3's own ``AWS_ENDPOINT_URL``,
credentials from boto3's chain). Objects live at ``<root>/sha256/<hex>``. Reads are streamed and
verified: an object whose bytes do not hash to its name is never handed out.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from kiln.errors import KilnError

CHUNK = 1 << 20


class CorruptObject(KilnError):
    """An object's bytes do not match its digest (tampered with, or truncated)."""


class ObjectStore(Protocol):
    url: str

    def has(self, digest: str) -> bool: ...

    def put(self, path: Path, digest: str) -> None:
        """Store the file ``path`` as ``digest`` (checked first; a present object is not rewritten)."""
        ...

    def chunks(self, digest: str) -> Iterator[bytes]:
        """The object's bytes, streamed (unverified: use :func:`fetch`)."""
        ...

    def put_named(self, key: str, data: bytes) -> None:
        """Store a small object under ``key`` (not content-addressed: layout indexes, log chunks)."""
        ...

    def get_named(self, key: str) -> bytes | None:
        """The object stored under ``key``, None if there is none."""
        ...

    def names(self, prefix: str) -> list[str]:
        """The keys below ``prefix`` (``prefix/...``), sorted."""
        ...

    def delete(self, digest: str) -> None:
        """Remove the object ``digest`` (absent: nothing to do)."""
        ...

    def delete_named(self, key: str) -> None:
        """Remove the object stored under ``key`` (absent: nothing to do)."""
        ...


def _hex(digest: str) -> str:
    algo, _, value = digest.partition(":")
    if algo != "sha256" or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise KilnError(f"not a sha256 digest: {digest!r}")
    return value


_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")


def _key(key: str) -> str:
    if not _KEY.match(key) or key.startswith("sha256/"):
        raise KilnError(f"not a named-object key: {key!r}")
    return key


def _check_file(path: Path, digest: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    if f"sha256:{h.hexdigest()}" != digest:
        raise CorruptObject(f"{path} does not have digest {digest} (it is sha256:{h.hexdigest()})")


def fetch(store: ObjectStore, digest: str, dest: Path) -> Path:
    """Stream ``digest`` into ``dest``, verifying it on the way; nothing is left at ``dest`` on a mismatch."""
    want = _hex(digest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in store.chunks(digest):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != want:
            raise CorruptObject(f"object {digest} in {store.url} is corrupt (its bytes hash to "
                                f"sha256:{h.hexdigest()}); not written to {dest}")  # fmt: skip
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
    return dest


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / _hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, path: Path, digest: str) -> None:
        _check_file(path, digest)
        target = self.path(digest)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".put.", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()

    def chunks(self, digest: str) -> Iterator[bytes]:
        try:
            with open(self.path(digest), "rb") as fh:
                yield from iter(lambda: fh.read(CHUNK), b"")
        except FileNotFoundError:
            raise KilnError(f"object {digest} is not in {self.url}") from None

    def put_named(self, key: str, data: bytes) -> None:
        target = self.root / _key(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".put.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()

    def get_named(self, key: str) -> bytes | None:
        try:
            return (self.root / _key(key)).read_bytes()
        except FileNotFoundError:
            return None

    def names(self, prefix: str) -> list[str]:
        base = self.root / _key(prefix)
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))  # fmt: skip

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def delete_named(self, key: str) -> None:
        (self.root / _key(key)).unlink(missing_ok=True)


class S3ObjectStore:
    def __init__(self, bucket: str, prefix: str, client: Any | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # boto3 reads AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 and credentials from its own chain.
        self.s3 = client or boto3.client("s3", config=Config(s3={"addressing_style": "path"},
                                                              retries={"mode": "standard"}))  # fmt: skip

    def key(self, digest: str) -> str:
        return "/".join(p for p in (self.prefix, "sha256", _hex(digest)) if p)

    def has(self, digest: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise KilnError(f"{self.url}: {exc}") from None
        return True

    def put(self, path: Path, digest: str) -> None:
        _check_file(path, digest)
        if not self.has(digest):
            self.s3.upload_file(str(path), self.bucket, self.key(digest))  # multipart, streamed from disk

    def chunks(self, digest: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.key(digest))["Body"]
        except ClientError as exc:
            raise KilnError(f"object {digest} is not readable in {self.url}: {exc}") from None
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def _named(self, key: str) -> str:
        return "/".join(p for p in (self.prefix, _key(key)) if p)

    def put_named(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self._named(key), Body=data)

    def get_named(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self._named(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise KilnError(f"{self.url}: {exc}") from None
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def names(self, prefix: str) -> list[str]:
        base = self._named(prefix) + "/"
        skip = len(self.prefix) + 1 if self.prefix else 0
        found: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            found += [str(item["Key"])[skip:] for item in page.get("Contents", [])]
        return sorted(found)

    def delete(self, digest: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.key(digest))  # S3: deleting nothing succeeds

    def delete_named(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self._named(key))


def open_object_store(url: str | None, data_dir: Path) -> ObjectStore:
    """``KILN_STORE_URL``'s store: a path, ``file://`` path, or ``s3://bucket/prefix``; None: the data
    directory's ``blobs``."""
    if not url:
        return LocalObjectStore(data_dir / "blobs")
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise KilnError(f"KILN_STORE_URL={url!r} names no bucket", hint="use s3://bucket/prefix")
        return S3ObjectStore(parsed.netloc, parsed.path)
    if parsed.scheme in ("", "file"):
        return LocalObjectStore(Path(parsed.path).expanduser().absolute())
    raise KilnError(f"KILN_STORE_URL={url!r}: unsupported scheme {parsed.scheme!r}",
                    hint="use a directory path or s3://bucket/prefix")  # fmt: skip


def index_key(manifest_digest: str) -> str:
    """Where the ``index.json`` of the OCI layout whose image is ``manifest_digest`` is kept."""
    return f"oci-index/{_hex(manifest_digest)}.json"


def publish(store: ObjectStore, artifacts: list[tuple[str, str, str]]) -> int:
    """Put an image's files into ``store`` by digest: (kind, path, digest) of each artifact and
    evidence file; an OCI layout directory contributes each of its blobs, and its ``index.json``
    under :func:`index_key` (so a reader can rebuild the layout). Returns objects put by digest."""
    put = 0
    for kind, path_text, digest in artifacts:
        path = Path(path_text)
        if path.is_dir():
            for blob in sorted((path / "blobs" / "sha256").glob("*")):
                store.put(blob, f"sha256:{blob.name}")
                put += 1
            if (path / "index.json").is_file():
                store.put_named(index_key(digest), (path / "index.json").read_bytes())
        elif path.is_file() and digest.startswith("sha256:"):
            store.put(path, digest)
            put += 1
        else:
            raise KilnError(f"{kind} artifact {path} is missing; it cannot be published to {store.url}")
    return put
