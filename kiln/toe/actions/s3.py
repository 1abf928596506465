"""S3Download and S3Upload with boto3 against any S3-compatible endpoint.

Credentials and region come from the usual AWS sources (environment, shared config, profiles); the
endpoint from ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` (boto3 reads them itself) or the run's
``s3`` service settings (``kiln toe run --s3-endpoint``). Paths on the image side are resolved inside
the root; uploads never follow a link out of it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import RootModel, field_validator

from kiln.toe.actions.base import Action, ActionContext, ActionFailed, InputModel, Outputs
from kiln.toe.actions.fileutil import (
    DEFAULT_FILE_MODE,
    PathText,
    host_path,
    image_path,
    make_dirs,
    name_matches,
    walk,
)


def _s3_url(value: str) -> str:
    if "{{" not in value and not value.startswith("s3://"):
        raise ValueError(f"must be an s3://bucket/key URL, got {value!r}")
    return value


def split_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not bucket:
        raise ActionFailed(f"{url}: no bucket name")
    return bucket, key


def client(ctx: ActionContext) -> Any:
    """A boto3 S3 client with the run's endpoint settings (a clear error when credentials are missing)."""
    import boto3  # imported lazily: most runs never touch S3
    from botocore.config import Config

    settings = dict(ctx.services.get("s3") or {})
    endpoint = settings.get("endpoint_url")  # --s3-endpoint, else KILN_S3_ENDPOINT_URL (kiln.settings)
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"})
    session = boto3.session.Session()  # a fresh session: credentials as the environment says now
    return session.client(
        "s3", endpoint_url=endpoint, region_name=settings.get("region") or None, config=config
    )


def _owner(expected: str | None) -> dict[str, str]:
    return {"ExpectedBucketOwner": expected} if expected else {}


def _failure(action: str, url: str, exc: Exception) -> ActionFailed:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return ActionFailed(
            f"{action} {url}: no AWS credentials found "
            "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return ActionFailed(f"{action} {url}: {error.get('Code', 'error')}: {error.get('Message', exc)}")
    if isinstance(exc, BotoCoreError):
        return ActionFailed(f"{action} {url}: {exc}")
    raise exc


class S3DownloadItem(InputModel):
    source: str
    destination: PathText
    expected_bucket_owner: str | None = None
    overwrite: bool = True

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return _s3_url(value)


class S3Download(Action):
    """An object to a file (or into a folder with a trailing /), or ``prefix/*`` to a folder (recursive)."""

    name = "S3Download"

    class Inputs(RootModel[list[S3DownloadItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = client(ctx)
        for item in inputs.root:
            bucket, key = split_url(item.source)
            try:
                if key.endswith("*") or key == "":
                    self.download_prefix(ctx, s3, bucket, key.rstrip("*"), item)
                else:
                    dest = (
                        item.destination + key.rsplit("/", 1)[-1] if item.destination.endswith("/") else None
                    )
                    self.download_one(ctx, s3, bucket, key, dest or item.destination, item)
            except (ClientError, BotoCoreError) as exc:
                raise _failure("S3Download", item.source, exc) from None
        return {}

    def download_prefix(
        self, ctx: ActionContext, s3: Any, bucket: str, prefix: str, item: S3DownloadItem
    ) -> None:
        if "*" in prefix:
            raise ActionFailed(f"{item.source}: a wildcard is accepted only at the end")
        paginator = s3.get_paginator("list_objects_v2")
        count = 0
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **_owner(item.expected_bucket_owner)):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                relative = key[len(prefix) :].lstrip("/")
                dest = f"{item.destination.rstrip('/')}/{relative}"
                self.download_one(ctx, s3, bucket, key, dest, item)
                count += 1
        if count == 0:
            raise ActionFailed(f"{item.source}: no objects match")

    def download_one(
        self, ctx: ActionContext, s3: Any, bucket: str, key: str, inside: str, item: S3DownloadItem
    ) -> None:
        target = host_path(ctx, inside)
        if target.is_dir():
            raise ActionFailed(f"{inside} is a folder (end the destination with / to download into it)")
        if target.exists() and not item.overwrite:
            raise ActionFailed(f"{inside} already exists and overwrite is false")
        make_dirs(ctx, target.parent)
        fd, tmp_name = tempfile.mkstemp(prefix=".kiln-s3-", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                s3.download_fileobj(bucket, key, fh, ExtraArgs=_owner(item.expected_bucket_owner) or None)
            tmp.chmod(DEFAULT_FILE_MODE)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        ctx.output(f"downloaded s3://{bucket}/{key} to {inside}")


class S3UploadItem(InputModel):
    source: PathText
    destination: str
    recurse: bool = False
    expected_bucket_owner: str | None = None

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str) -> str:
        return _s3_url(value)


class S3Upload(Action):
    """A file to a key (or under a prefix ending in /); ``dir/*`` to a prefix; ``recurse``: sub-folders."""

    name = "S3Upload"

    class Inputs(RootModel[list[S3UploadItem]]):
        pass

    def run(self, ctx: ActionContext, inputs: Inputs) -> Outputs:
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = client(ctx)
        for item in inputs.root:
            bucket, key = split_url(item.destination)
            many = "*" in item.source or item.recurse
            prefix = key if key == "" or key.endswith("/") else (f"{key}/" if many else "")
            try:
                for path, relative in self.files(ctx, item):
                    target_key = prefix + relative if (many or prefix or key == "") else key
                    extra = _owner(item.expected_bucket_owner) or None
                    s3.upload_file(str(path), bucket, target_key, ExtraArgs=extra)
                    ctx.output(f"uploaded {image_path(ctx, path)} to s3://{bucket}/{target_key}")
            except (ClientError, BotoCoreError) as exc:
                raise _failure("S3Upload", item.destination, exc) from None
        return {}

    def files(self, ctx: ActionContext, item: S3UploadItem) -> list[tuple[Path, str]]:
        """(host path, key suffix) of each file to upload; links are resolved inside the image."""
        source = item.source
        folder, _, name = source.rstrip("/").rpartition("/")
        if "*" in folder:
            raise ActionFailed(f"{source}: wildcards are accepted only after the last path separator")
        if "*" in name or item.recurse:
            base_inside = folder if "*" in name else source.rstrip("/")
            base = host_path(ctx, base_inside or "/")
            if not base.is_dir():
                raise ActionFailed(f"{base_inside or '/'}: no such folder")
            pattern = name if "*" in name else "*"
            found: list[tuple[Path, str]] = []
            tops = sorted(p for p in base.iterdir() if name_matches(pattern, p.name))
            for top in tops:
                entries = [top] if not top.is_dir() else (walk(top) if item.recurse else [])
                for entry in entries:
                    real = host_path(ctx, image_path(ctx, entry))
                    if real.is_file():
                        found.append((real, str(entry.relative_to(base))))
            if not found:
                raise ActionFailed(f"{source}: no files to upload")
            return found
        path = host_path(ctx, source)
        if path.is_dir():
            raise ActionFailed(f"{source} is a folder: use folder/* or recurse: true")
        if not path.is_file():
            raise ActionFailed(f"{source}: no such file")
        return [(path, path.name)]
