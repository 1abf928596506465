"""S3 destination: every artifact and evidence file under ``s3://BUCKET/PREFIX/``, then ``SHA256SUMS``
and ``manifest.json``. Files above ``multipart_threshold`` go up in ``part_size`` parts; every part and
object carries an S3 SHA-256 checksum, and the whole file's sha256 is in the object's metadata
(``x-amz-meta-sha256``), which also makes a re-upload of an unchanged object a no-op.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import urlencode

from kiln.distribute import aws
from kiln.distribute.base import Destination, DistributionError, External
from kiln.distribute.files import sha256sums
from kiln.distribute.spec import S3Target, size_bytes
from kiln.store import file_sha256


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


class S3(Destination):
    kind = "s3"
    Spec = S3Target
    spec: S3Target

    @property
    def endpoint(self) -> str | None:
        return self.spec.endpoint_url or self.ctx.settings.s3_endpoint_url

    @property
    def prefix(self) -> str:
        return self.ctx.render(self.spec.prefix).strip("/")

    def s3(self, *, quick: bool = False) -> Any:
        return aws.client(self.ctx.environ, "s3", self.spec.region, self.endpoint, quick=quick)

    def preflight(self) -> None:
        aws.check_bucket(self.s3(quick=True), self.spec.bucket, self.spec.name)

    def metadata(self, sha256: str) -> dict[str, str]:
        image = self.ctx.image
        return {"sha256": sha256, "kiln-image": image.ref, "kiln-digest": image.digest}

    def upload(self, s3: Any, key: str, path: Any = None, data: bytes | None = None) -> dict[str, Any]:
        """Upload a file (or bytes) to ``key`` unless an object with the same sha256 is there."""
        sha = hashlib.sha256(data).hexdigest() if data is not None else file_sha256(path)
        size = len(data) if data is not None else path.stat().st_size
        url = f"s3://{self.spec.bucket}/{key}"
        try:
            head = s3.head_object(Bucket=self.spec.bucket, Key=key)
            if head.get("Metadata", {}).get("sha256") == sha and head.get("ContentLength") == size:
                return {"key": key, "sha256": sha, "size": size, "url": url, "uploaded": False}
        except s3.exceptions.ClientError:
            pass
        extra: dict[str, Any] = {"Metadata": self.metadata(sha)}
        if self.spec.tags:
            extra["Tagging"] = urlencode(sorted(self.spec.tags.items()))
        if data is None and size > size_bytes(self.spec.multipart_threshold):
            parts = self._multipart(s3, key, path, extra)
        else:
            body = data if data is not None else path.read_bytes()
            s3.put_object(Bucket=self.spec.bucket, Key=key, Body=body, ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=_b64(hashlib.sha256(body).digest()), **extra)  # fmt: skip
            parts = 0
        return {"key": key, "sha256": sha, "size": size, "url": url, "uploaded": True, "parts": parts}

    def _multipart(self, s3: Any, key: str, path: Any, extra: dict[str, Any]) -> int:
        bucket, part_size = self.spec.bucket, size_bytes(self.spec.part_size)
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", **extra)
        upload_id = upload["UploadId"]
        parts = []
        try:
            with open(path, "rb") as fh:
                for number, chunk in enumerate(iter(lambda: fh.read(part_size), b""), start=1):
                    checksum = _b64(hashlib.sha256(chunk).digest())
                    answer = s3.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                        Body=chunk, ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum,
                    )  # fmt: skip
                    if answer.get("ChecksumSHA256", checksum) != checksum:
                        raise DistributionError(
                            f"s3://{bucket}/{key}: part {number} arrived with another checksum"
                        )
                    parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
            s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})  # fmt: skip
        except BaseException:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return len(parts)

    def publish(self) -> External:
        s3 = self.s3()
        objects = [self.upload(s3, f"{self.prefix}/{f.name}", f.source) for f in self.ctx.files()]
        manifest = self.ctx.manifest()
        objects.append(self.upload(s3, f"{self.prefix}/manifest.json", data=manifest))
        sums = sha256sums([(o["sha256"], o["key"].removeprefix(self.prefix + "/")) for o in objects])
        objects.append(self.upload(s3, f"{self.prefix}/SHA256SUMS", data=sums))
        self.ctx.log(
            f"s3://{self.spec.bucket}/{self.prefix}/: {sum(o['uploaded'] for o in objects)} uploaded"
        )
        return {
            "bucket": self.spec.bucket,
            "prefix": self.prefix,
            "manifest": f"s3://{self.spec.bucket}/{self.prefix}/manifest.json",
            "objects": [{k: o[k] for k in ("key", "sha256", "size")} for o in objects],
            "uploaded": sum(o["uploaded"] for o in objects),
        }

    def unpublish(self, external: External) -> list[str]:
        s3, bucket = self.s3(), external.get("bucket", self.spec.bucket)
        orphans = []
        for obj in external.get("objects", []):
            try:
                s3.delete_object(Bucket=bucket, Key=obj["key"])
            except Exception as exc:  # each failure is an orphan, the rest still go
                orphans.append(aws.explain(exc, f"s3://{bucket}/{obj['key']}"))
        return orphans
