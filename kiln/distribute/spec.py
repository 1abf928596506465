"""The ``distribution:`` section of a recipe: a list of named targets, one model per destination kind.

Only pydantic here (the recipe model imports it); the destinations that act on these live beside it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REGISTRY_REPO = re.compile(r"^[a-z0-9.-]+(:\d{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)+$")
TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
TEMPLATE_FIELDS = frozenset({"name", "version", "build", "date", "digest_short"})
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SIZE = re.compile(r"^(\d+)([KMG]?)$")


def _template(value: str) -> str:
    unknown = sorted(set(TEMPLATE.findall(value)) - TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown template variable(s) {', '.join(unknown)} in {value!r}; "
            f"known: {', '.join(sorted(TEMPLATE_FIELDS))}"
        )
    return value


def _size(value: str) -> str:
    if not SIZE.match(value) or size_bytes(value) < 5 << 20:
        raise ValueError(f"{value!r} is not a size of at least 5M (e.g. 8M, 64M, 1G)")
    return value


def size_bytes(value: str) -> int:
    m = SIZE.match(value)
    if m is None:
        raise ValueError(f"{value!r} is not a size")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


Template = Annotated[str, AfterValidator(_template)]
Size = Annotated[str, AfterValidator(_size)]


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the target's name (kiln distribute --target NAME)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TARGET_NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (at most 64)")
        return value

    def digest(self) -> str:
        """What the target's configuration is; a change publishes again."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class DirectoryTarget(_Target):
    """Every artifact and evidence file, SHA256SUMS and manifest.json under PATH/NAME/VERSION-BUILD."""

    type: Literal["directory"]
    path: str = Field(description="destination folder (absolute, or relative to the recipe)")


class OciTarget(_Target):
    """Push the OCI image with skopeo (digest preserved) and attach evidence as OCI 1.1 referrers."""

    type: Literal["oci"]
    repositories: list[str] = Field(min_length=1, description="host[:port]/path, one push each")
    tags: list[Template] = Field(
        default_factory=lambda: ["{{ version }}", "{{ version }}-{{ build }}"],
        description="tag templates: {{ version }}, {{ build }}, {{ name }}, {{ date }}, {{ digest_short }}",
    )
    tls_verify: bool = Field(True, description="false only for a plain-HTTP registry (tests, labs)")
    referrers: bool = Field(True, description="attach SBOMs, VEX and provenance as OCI referrers")
    channel_tags: bool = Field(False, description="promotion tags the image with its channel name")

    @field_validator("repositories")
    @classmethod
    def _repositories(cls, value: list[str]) -> list[str]:
        for repo in value:
            if not REGISTRY_REPO.match(repo):
                raise ValueError(f"{repo!r} is not host[:port]/repository (lowercase)")
        return value


class S3Target(_Target):
    """Upload artifacts and evidence (multipart for large files, SHA-256 checksums) and a manifest.json."""

    type: Literal["s3"]
    bucket: str
    prefix: Template = "{{ name }}/{{ version }}-{{ build }}"
    region: str = "us-east-1"
    endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (default: AWS, or KILN_S3_ENDPOINT_URL)"
    )
    multipart_threshold: Size = "64M"
    part_size: Size = "16M"
    tags: dict[str, str] = Field(default_factory=dict, description="object tags")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not BUCKET.match(value):
            raise ValueError(f"{value!r} is not an S3 bucket name")
        return value


class LaunchPermissions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: list[Annotated[str, Field(pattern=r"^\d{12}$")]] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list, description="organization ARNs")
    organizational_units: list[str] = Field(default_factory=list, description="OU ARNs")


class AmiTarget(_Target):
    """A raw or VHD disk as an EC2 AMI: a snapshot (S3 upload + ImportSnapshot, or the EBS direct
    APIs for raw disks), an image registered with the boot mode, tags, launch permissions, copies."""

    type: Literal["ami"]
    region: str = "us-east-1"
    endpoint_url: str | None = Field(None, description="one endpoint for S3, EC2, EBS and IAM (emulators)")
    snapshot_method: Literal["import", "ebs-direct"] = Field(
        "import",
        description="import: upload to S3 + ImportSnapshot (raw, vhd); ebs-direct: EBS direct APIs (raw)",
    )
    bucket: str | None = Field(None, description="S3 bucket for the disk upload (snapshot_method import)")
    prefix: Template = "{{ name }}/{{ version }}-{{ build }}"
    role_name: str = Field("vmimport", description="the service role ImportSnapshot uses")
    image_name: Template = "{{ name }}-{{ version }}-{{ build }}"
    disk: Literal["raw", "vhd"] | None = Field(
        None, description="which disk artifact (default: raw, else vhd)"
    )
    boot_mode: Literal["uefi", "legacy-bios", "uefi-preferred"] | None = Field(
        None,
        description="default: the recipe's disk boot (uefi; bios → legacy-bios; hybrid → uefi-preferred)",
    )
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    ena_support: bool = True
    sriov_net_support: bool = True
    tags: dict[str, str] = Field(default_factory=dict, description="tags on the AMIs and snapshots")
    regions: list[str] = Field(default_factory=list, description="copy the AMI to these regions too")
    launch_permissions: LaunchPermissions = Field(default_factory=LaunchPermissions)
    import_timeout: int = Field(3600, ge=10, le=86400, description="seconds to wait for a snapshot")
    multipart_threshold: Size = "64M"
    part_size: Size = "16M"

    @model_validator(mode="after")
    def _method(self) -> AmiTarget:
        if self.snapshot_method == "import" and not self.bucket:
            raise ValueError("snapshot_method import needs a bucket")
        if self.snapshot_method == "ebs-direct" and self.disk == "vhd":
            raise ValueError("snapshot_method ebs-direct uploads raw disks only")
        return self


Target = Annotated[DirectoryTarget | OciTarget | S3Target | AmiTarget, Field(discriminator="type")]


def _unique(targets: list[Target]) -> list[Target]:
    names = [t.name for t in targets]
    for name in sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"target '{name}' is declared twice")
    return targets


Targets = Annotated[list[Target], AfterValidator(_unique)]
