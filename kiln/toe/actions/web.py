"""WebDownload: HTTP(S) downloads into the image with retries, redirects and checksum verification.

Each file is streamed to a temporary file beside its destination and renamed into place only when
complete (and verified), so a failed download never leaves a half-written file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from pydantic import RootModel, field_validator, model_validator

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.fileutil import DEFAULT_FILE_MODE, PathText, host_path, make_dirs

ATTEMPTS = 5
BACKOFF = 0.5  # seconds, doubled after each failed attempt
Algorithm = Literal["MD5", "SHA1", "SHA256", "SHA512"]
USER_AGENT = "kiln-toe (AWSTOE-compatible)"


class WebDownloadItem(InputModel):
    source: PathText
    destination: PathText
    overwrite: bool = True
    checksum: str | None = None
    algorithm: Algorithm | None = None
    ignore_certificate_errors: bool = False

    @field_validator("algorithm", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("source")
    @classmethod
    def _url(cls, value: str) -> str:
        if "{{" not in value and urlparse(value).scheme not in ("http", "https"):
            raise ValueError(f"source must be an http:// or https:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _pair(self) -> WebDownloadItem:
        if (self.checksum is None) != (self.algorithm is None):
            raise ValueError("checksum and algorithm must be given together")
        return self


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm.lower())
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class WebDownload(Action):
    """Output ``destination``: the image paths written, one per line."""

    name = "WebDownload"

    class Inputs(RootModel[list[WebDownloadItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        written = [self.download(ctx, item) for item in inputs.root]
        return {"destination": "\n".join(written)}

    def download(self, ctx: ActionContext, item: WebDownloadItem) -> str:
        url_name = unquote(Path(urlparse(item.source).path).name)
        if item.destination.endswith("/"):
            if not url_name:
                raise ActionFailed(f"{item.source}: the URL names no file; give a file destination")
            inside = item.destination + url_name
        else:
            inside = item.destination
        target = host_path(ctx, inside)
        if target.is_dir():
            raise ActionFailed(f"{inside} is a folder")
        if target.exists():
            if not item.overwrite:
                raise ActionFailed(f"{inside} already exists and overwrite is false")
            if item.checksum and item.algorithm and _digest(target, item.algorithm) == item.checksum.lower():
                ctx.output(f"{inside} already has {item.algorithm} {item.checksum}; not downloaded again")
                return inside
        make_dirs(ctx, target.parent)
        error = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self.fetch(ctx, item, target)
            except _Retryable as exc:
                error = str(exc)
                ctx.output(f"download of {item.source} failed (attempt {attempt}/{ATTEMPTS}): {error}")
                if attempt < ATTEMPTS:
                    time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            ctx.output(f"downloaded {item.source} to {inside}")
            return inside
        raise ActionFailed(f"download of {item.source} failed after {ATTEMPTS} attempts: {error}")

    def fetch(self, ctx: ActionContext, item: WebDownloadItem, target: Path) -> None:
        import httpx  # imported lazily: most runs download nothing

        fd, tmp_name = tempfile.mkstemp(prefix=".kiln-download-", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                timeout = httpx.Timeout(ctx.timeout if ctx.timeout else 60.0, connect=30.0)
                verify = not item.ignore_certificate_errors
                headers = {"User-Agent": USER_AGENT}
                try:
                    with httpx.stream(
                        "GET",
                        item.source,
                        follow_redirects=True,
                        timeout=timeout,
                        verify=verify,
                        headers=headers,
                    ) as response:
                        if response.status_code != 200:
                            message = (
                                f"HTTP {response.status_code} {response.reason_phrase} from {response.url}"
                            )
                            if response.status_code >= 500 or response.status_code == 429:
                                raise _Retryable(message)
                            raise ActionFailed(f"download of {item.source} failed: {message}")
                        for chunk in response.iter_bytes(1 << 20):
                            fh.write(chunk)
                except httpx.HTTPError as exc:
                    raise _Retryable(f"{type(exc).__name__}: {exc}") from None
            if item.checksum and item.algorithm:
                got = _digest(tmp, item.algorithm)
                if got != item.checksum.strip().lower():
                    raise ActionFailed(
                        f"{item.source}: {item.algorithm} checksum mismatch: "
                        f"expected {item.checksum}, got {got}"
                    )
            tmp.chmod(DEFAULT_FILE_MODE)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)


class _Retryable(Exception):
    """A transient failure (connection, 5xx): the download is tried again."""
