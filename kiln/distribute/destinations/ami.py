"""Amazon EC2 AMI destination.

1. a snapshot of the disk: ``import`` uploads the raw/VHD disk to S3 and calls ImportSnapshot (AWS
   converts it; needs the ``vmimport`` service role); ``ebs-direct`` writes a raw disk's non-zero
   512 KiB blocks with the EBS direct APIs (StartSnapshot/PutSnapshotBlock/CompleteSnapshot, each
   block with its SHA-256 checksum), no bucket and no role needed;
2. RegisterImage (hvm, root /dev/xvda on the snapshot, boot mode, ENA, SR-IOV), tags on image and
   snapshot, launch permissions (accounts, organizations, OUs);
3. CopyImage to every further region, with the same tags and permissions.

An AMI of this name that already carries the image's digest tag is reused (a retry after a partial
failure does not register twice). Unpublish deregisters every AMI and deletes its snapshots.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from kiln.distribute import aws
from kiln.distribute.base import Destination, DistributionError, External, PreflightFailed
from kiln.distribute.destinations.s3 import S3
from kiln.distribute.spec import AmiTarget, S3Target

BLOCK = 512 << 10  # the EBS direct APIs' block size
GIB = 1 << 30
BOOT = {"uefi": "uefi", "bios": "legacy-bios", "hybrid": "uefi-preferred"}
DIGEST_TAG = "kiln:digest"
POLL = 5.0


class Ami(Destination):
    kind = "ami"
    Spec = AmiTarget
    spec: AmiTarget
    disk_key: str | None = None  # the uploaded disk (snapshot_method import)

    # --- helpers ------------------------------------------------------------------------------

    def client(self, service: str, region: str | None = None, *, quick: bool = False) -> Any:
        region = region or self.spec.region
        return aws.client(self.ctx.environ, service, region, self.spec.endpoint_url, quick=quick)

    def disk(self) -> tuple[Path, str]:
        kinds = [self.spec.disk] if self.spec.disk else ["raw", "vhd"]
        if self.spec.snapshot_method == "ebs-direct":
            kinds = ["raw"]
        for kind in kinds:
            artifact = next((a for a in self.ctx.image.artifacts if a.kind == kind), None)
            if artifact is not None:
                return Path(artifact.path), kind
        raise PreflightFailed(
            f"target {self.spec.name}: {self.ctx.image.ref} has no {' or '.join(kinds)} disk",
            hint="add a raw (or, for snapshot_method import, vhd) output to the recipe",
        )

    @property
    def boot_mode(self) -> str:
        return self.spec.boot_mode or BOOT.get(self.ctx.boot or "uefi", "uefi")

    def tags(self) -> list[dict[str, str]]:
        image = self.ctx.image
        tags = {
            "Name": self.ctx.render(self.spec.image_name),
            "kiln:image": image.ref,
            DIGEST_TAG: image.digest,
        }
        tags.update(self.spec.tags)
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    # --- contract -----------------------------------------------------------------------------

    def preflight(self) -> None:
        if not self.ctx.planned:
            self.disk()
        ec2 = self.client("ec2", quick=True)
        try:
            known = {r["RegionName"] for r in ec2.describe_regions(AllRegions=True)["Regions"]}
        except Exception as exc:
            raise PreflightFailed(f"target {self.spec.name}: {aws.explain(exc, 'EC2')}") from None
        unknown = [r for r in [self.spec.region, *self.spec.regions] if r not in known]
        if unknown:
            raise PreflightFailed(f"target {self.spec.name}: unknown region(s) {', '.join(unknown)}")
        if self.spec.snapshot_method == "import":
            assert self.spec.bucket is not None
            aws.check_bucket(self.client("s3", quick=True), self.spec.bucket, self.spec.name)
            try:
                self.client("iam", quick=True).get_role(RoleName=self.spec.role_name)
            except Exception as exc:
                raise PreflightFailed(
                    f"target {self.spec.name}: {aws.explain(exc, f'service role {self.spec.role_name}')}",
                    hint="ImportSnapshot needs the vmimport role: see AWS VM Import/Export's required roles",
                ) from None

    def publish(self) -> External:
        ec2 = self.client("ec2")
        name = self.ctx.render(self.spec.image_name)
        amis: dict[str, str] = {}
        snapshots: dict[str, list[str]] = {}
        requested: dict[str, Any] = {}
        existing = self._find(ec2, name)
        if existing is not None:
            amis[self.spec.region], snapshots[self.spec.region] = existing
            self.ctx.log(f"{self.spec.region}: {existing[0]} already registered")
        else:
            snapshot = self._snapshot(ec2)
            snapshots[self.spec.region] = [snapshot]
            requested = self._register_request(name, snapshot)
            amis[self.spec.region] = ec2.register_image(**requested)["ImageId"]
            self._decorate(ec2, amis[self.spec.region], [snapshot])
        for region in self.spec.regions:
            regional = self.client("ec2", region)
            found = self._find(regional, name)
            if found is not None:
                amis[region], snapshots[region] = found
                continue
            copied = regional.copy_image(SourceImageId=amis[self.spec.region], SourceRegion=self.spec.region,
                                         Name=name, Description=self._description())  # fmt: skip
            amis[region] = copied["ImageId"]
            snapshots[region] = self._snapshots_of(regional, amis[region])
            self._decorate(regional, amis[region], snapshots[region])
        return {
            "name": name,
            "amis": amis,
            "snapshots": snapshots,
            "boot_mode": self.boot_mode,
            "register": {k: v for k, v in requested.items() if k != "BlockDeviceMappings"},
            **({"disk_key": self.disk_key} if self.disk_key else {}),
        }

    def unpublish(self, external: External) -> list[str]:
        orphans = []
        for region, ami in external.get("amis", {}).items():
            ec2 = self.client("ec2", region)
            try:
                ec2.deregister_image(ImageId=ami)
            except ClientError as exc:
                if "NotFound" not in exc.response.get("Error", {}).get("Code", ""):
                    orphans.append(aws.explain(exc, f"{region}: {ami}"))
                    continue
            for snapshot in external.get("snapshots", {}).get(region, []):
                try:
                    ec2.delete_snapshot(SnapshotId=snapshot)
                except ClientError as exc:
                    if "NotFound" not in exc.response.get("Error", {}).get("Code", ""):
                        orphans.append(aws.explain(exc, f"{region}: {snapshot}"))
        if external.get("disk_key") and self.spec.bucket:
            try:
                self.client("s3").delete_object(Bucket=self.spec.bucket, Key=external["disk_key"])
            except Exception as exc:
                orphans.append(aws.explain(exc, f"s3://{self.spec.bucket}/{external['disk_key']}"))
        return orphans

    # --- steps --------------------------------------------------------------------------------

    def _description(self) -> str:
        return f"{self.ctx.image.ref} {self.ctx.image.digest}"

    def _find(self, ec2: Any, name: str) -> tuple[str, list[str]] | None:
        images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
        for image in images:
            tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
            if tags.get(DIGEST_TAG) == self.ctx.image.digest:
                tagged = ec2.describe_snapshots(
                    OwnerIds=["self"],
                    Filters=[{"Name": f"tag:{DIGEST_TAG}", "Values": [self.ctx.image.digest]}],
                )["Snapshots"]
                found = self._snapshots_of(ec2, image["ImageId"], image) + [t["SnapshotId"] for t in tagged]
                return image["ImageId"], sorted(set(found))
        return None

    @staticmethod
    def _snapshots_of(ec2: Any, ami: str, image: dict[str, Any] | None = None) -> list[str]:
        if image is None:
            image = ec2.describe_images(ImageIds=[ami])["Images"][0]
        return [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")]  # fmt: skip

    def _register_request(self, name: str, snapshot: str) -> dict[str, Any]:
        return {
            "Name": name,
            "Description": self._description(),
            "Architecture": self.spec.architecture,
            "VirtualizationType": "hvm",
            "RootDeviceName": "/dev/xvda",
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda",
                 "Ebs": {"SnapshotId": snapshot, "DeleteOnTermination": True, "VolumeType": "gp3"}}
            ],
            "BootMode": self.boot_mode,
            "EnaSupport": self.spec.ena_support,
            **({"SriovNetSupport": "simple"} if self.spec.sriov_net_support else {}),
        }  # fmt: skip

    def _decorate(self, ec2: Any, ami: str, snapshots: list[str]) -> None:
        ec2.create_tags(Resources=[ami, *snapshots], Tags=self.tags())
        perms = self.spec.launch_permissions
        add = [{"UserId": a} for a in perms.accounts]
        add += [{"OrganizationArn": o} for o in perms.organizations]
        add += [{"OrganizationalUnitArn": u} for u in perms.organizational_units]
        if add:
            ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": add})

    def _snapshot(self, ec2: Any) -> str:
        path, kind = self.disk()
        if self.spec.snapshot_method == "ebs-direct":
            snapshot = self._ebs_direct(path)
        else:
            snapshot = self._import(ec2, path, kind)
        deadline = time.monotonic() + self.spec.import_timeout
        while True:
            state = ec2.describe_snapshots(SnapshotIds=[snapshot])["Snapshots"][0]["State"]
            if state == "completed":
                return snapshot
            if state == "error" or time.monotonic() > deadline:
                raise DistributionError(f"snapshot {snapshot} is {state}")
            time.sleep(POLL)

    def _ebs_direct(self, path: Path) -> str:
        ebs = self.client("ebs")
        size = path.stat().st_size
        started = ebs.start_snapshot(
            VolumeSize=max(1, -(-size // GIB)), Description=self._description(), Tags=self.tags(),
            ClientToken=hashlib.sha256(f"{self.ctx.image.digest}:{self.spec.name}".encode()).hexdigest()[:64],
        )  # fmt: skip
        snapshot: str = started["SnapshotId"]
        changed = 0
        zero = bytes(BLOCK)
        with open(path, "rb") as fh:
            for index, block in enumerate(iter(lambda: fh.read(BLOCK), b"")):
                if len(block) < BLOCK:
                    block += bytes(BLOCK - len(block))
                if block == zero:
                    continue  # an EBS snapshot reads unwritten blocks as zeros
                ebs.put_snapshot_block(
                    SnapshotId=snapshot, BlockIndex=index, BlockData=block, DataLength=BLOCK,
                    Checksum=base64.b64encode(hashlib.sha256(block).digest()).decode(),
                    ChecksumAlgorithm="SHA256",
                )  # fmt: skip
                changed += 1
        ebs.complete_snapshot(SnapshotId=snapshot, ChangedBlocksCount=changed)
        self.ctx.log(f"{snapshot}: {changed} blocks of {BLOCK >> 10} KiB written")
        return snapshot

    def _import(self, ec2: Any, path: Path, kind: str) -> str:
        assert self.spec.bucket is not None
        spec = self.spec
        s3spec = S3Target(
            name=spec.name, type="s3", bucket=spec.bucket, prefix=spec.prefix, region=spec.region,
            endpoint_url=spec.endpoint_url, multipart_threshold=spec.multipart_threshold,
            part_size=spec.part_size,
        )  # fmt: skip
        uploader = S3(s3spec, self.ctx)
        key = f"{uploader.prefix}/{path.name}"
        uploader.upload(uploader.s3(), key, path)
        self.disk_key = key
        container = {"Format": kind.upper(), "UserBucket": {"S3Bucket": self.spec.bucket, "S3Key": key}}
        task = ec2.import_snapshot(
            Description=self._description(), RoleName=self.spec.role_name, DiskContainer=container
        )["ImportTaskId"]
        deadline = time.monotonic() + self.spec.import_timeout
        while True:
            detail = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task])["ImportSnapshotTasks"][0]
            detail = detail["SnapshotTaskDetail"]
            if detail.get("Status") == "completed":
                return str(detail["SnapshotId"])
            if detail.get("Status") in ("deleted", "deleting") or time.monotonic() > deadline:
                raise DistributionError(
                    f"import task {task}: {detail.get('StatusMessage', detail.get('Status'))}"
                )
            time.sleep(POLL)
