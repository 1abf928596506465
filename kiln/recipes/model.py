"""The recipe format, as pydantic models (the published JSON Schema is generated from these)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kiln.distribute.spec import Targets
from kiln.errors import UsageError
from kiln.evidence.settings import ComplianceGate, ScanGate, SigningSettings
from kiln.models import EPOCH_MAX, EPOCH_MIN
from kiln.outputs.disk import DiskOptions, parse_size
from kiln.recipes.parentref import ParentSource, parse_parent
from kiln.registry.semver import parse_pattern

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
PARENT = re.compile(r"^(?P<distribution>debian|ubuntu):(?P<suite>[a-z]+)$")
DISTRIBUTION_ONLY = {"mirror", "variant", "packages", "areas", "security"}
PORT = re.compile(r"^(\d{1,5})(/(tcp|udp|sctp))?$")
# SOURCE_DATE_EPOCH stamps every output, and the tightest format is FAT (the disk's boot partition):
# mtools wraps any time outside 1980-01-01 .. 2107-12-31 (tar, OCI, ext4 and VHD reach further).
# A raw disk is first written as a sparse file: ext4 (the usual host file system) caps files below
# 16 TiB; qemu-img's vpc (VHD) format caps images at 2040 GiB.
DISK_MAX = {"vhd": 2040 << 30}
DISK_MAX_DEFAULT = 15 << 40


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParentSpec(Strict):
    """Where the root filesystem starts: ``debian:bookworm`` or ``ubuntu:noble`` from packages, a
    catalogued Kiln image (``kiln:NAME@CONSTRAINT``) or an OCI image (kiln.recipes.parentref)."""

    image: str = Field(
        description="debian:SUITE or ubuntu:SUITE (bootstrapped from packages); "
        "kiln:NAME@CONSTRAINT, a catalogued image, with CONSTRAINT one of 1.x, 1.2.x, 1.2.0, 1.2.0/3 "
        "(build number), latest, sha256:<digest> or a promotion channel name; "
        "oci-layout:PATH[:TAG] (relative to the recipe file); "
        "docker://HOST/REPO:TAG@sha256:<digest> (fetched with skopeo)",
        examples=["debian:bookworm", "kiln:org-base@1.x", "oci-layout:../base-oci:1.0.0"],
    )
    mirror: str | None = Field(None, description="archive URL (default: the distribution's own)")
    variant: Literal["extract", "custom", "essential", "apt", "required", "minbase", "buildd",
                     "important", "debootstrap", "standard"] = "minbase"  # fmt: skip
    packages: list[str] = Field(default_factory=list, description="extra packages in the parent")
    architecture: str = "amd64"
    areas: list[str] = Field(
        default_factory=lambda: ["main"], description="archive areas (main, contrib, ...)"
    )
    security: bool = Field(True, description="add the -updates and -security suites")

    @field_validator("image")
    @classmethod
    def _known_parent(cls, value: str) -> str:
        parse_parent(value)  # ValueError naming the accepted forms
        return value

    @model_validator(mode="after")
    def _distribution_fields(self) -> ParentSpec:
        if PARENT.match(self.image):
            return self
        given = sorted(self.model_fields_set & DISTRIBUTION_ONLY)
        if given:
            raise ValueError(
                f"{', '.join(given)} apply only to a distribution parent (debian:SUITE); the image "
                f"{self.image} already has its packages: install more with a component"
            )
        return self

    @property
    def source(self) -> ParentSource:
        return parse_parent(self.image)

    @field_validator("packages")
    @classmethod
    def _package_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?(=[^\s]+)?$", name):
                raise ValueError(f"invalid package name '{name}'")
        return value


class ComponentRef(Strict):
    """One component of the recipe: a document file (``path``) or a built-in (``name``)."""

    path: str | None = Field(None, description="AWSTOE document, relative to the recipe file")
    name: str | None = Field(
        None,
        description="a built-in component (update-os), or a registry reference NAME@PATTERN "
        "(nginx@1.x, nginx@1.2.x, nginx@1.2.3, nginx@latest: see `kiln components`)",
    )
    version: str | None = Field(None, description="component version recorded with the image")
    parameters: dict[str, str] = Field(default_factory=dict)
    archive_independent: bool = Field(
        False,
        description="the component's result does not depend on the parent's package versions (it only "
        "writes files): `kiln build --refresh` reuses its cached layer on a new parent with the same "
        "SOURCE_DATE_EPOCH, as long as every component before it is archive-independent too",
    )
    secret_parameters: dict[str, str] = Field(
        default_factory=dict,
        description="parameter name -> name of a recipe secret whose value it gets at run time "
        "(written in `parameters` as `NAME: {secret: SECRET}` or `{name: NAME, secret: SECRET}`)",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            is_path = data.endswith((".yaml", ".yml", ".json")) or (
                "/" in data and "@" not in data and not data.startswith("hardening/")
            )
            return {"path": data} if is_path else {"name": data}
        if isinstance(data, dict) and isinstance(data.get("parameters"), list):
            data = dict(data)
            data["parameters"] = _image_builder_parameters(data["parameters"])
        if isinstance(data, dict) and isinstance(data.get("parameters"), dict):
            data = _split_secret_parameters(data)
        return data

    @model_validator(mode="after")
    def _one_source(self) -> ComponentRef:
        if (self.path is None) == (self.name is None):
            raise ValueError("give exactly one of 'path' or 'name'")
        return self

    @model_validator(mode="after")
    def _registry_pattern(self) -> ComponentRef:
        if self.name is not None and "@" in self.name:
            if self.version is not None:
                raise ValueError("'version' cannot be combined with a registry reference NAME@PATTERN")
            try:
                parse_pattern(self.name.partition("@")[2])
            except UsageError as exc:
                raise ValueError(f"{exc.message} ({exc.hint})") from None
        return self

    @property
    def registry(self) -> tuple[str, str] | None:
        """``(NAME, PATTERN)`` of a registry reference ``NAME@PATTERN``; None for files and built-ins."""
        if self.name is None or "@" not in self.name:
            return None
        name, _, pattern = self.name.partition("@")
        return name, pattern

    @property
    def label(self) -> str:
        return self.name or str(self.path)

    def recorded_parameters(self) -> dict[str, str]:
        """The parameters as every record shows them: a secret parameter as its secret's name only."""
        return {**self.parameters, **{k: secret_placeholder(v) for k, v in self.secret_parameters.items()}}


def secret_placeholder(secret: str) -> str:
    """What records (catalog, lock file, provenance, cache metadata) hold for a secret parameter."""
    return f"<secret:{secret}>"


def _split_secret_parameters(data: dict[str, Any]) -> dict[str, Any]:
    """``parameters: {Token: {secret: API_TOKEN}}`` → ``secret_parameters: {Token: API_TOKEN}``."""
    plain: dict[str, Any] = {}
    secret: dict[str, Any] = dict(data.get("secret_parameters") or {})
    for name, value in data["parameters"].items():
        if isinstance(value, dict):
            if set(value) != {"secret"}:
                raise ValueError(f"parameter '{name}': a mapping value must be {{secret: SECRET_NAME}}")
            secret[str(name)] = value["secret"]
        else:
            plain[name] = value
    return {**data, "parameters": plain, "secret_parameters": secret}


def _image_builder_parameters(items: list[Any]) -> dict[str, Any]:
    """Image Builder's ``[{name: X, value: [v]}]`` → ``{X: v}``; ``{name: X, secret: S}`` too."""
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and set(item) == {"name", "secret"}:
            out[str(item["name"])] = {"secret": item["secret"]}
            continue
        if not isinstance(item, dict) or set(item) != {"name", "value"}:
            raise ValueError(
                "each parameter must be {name: NAME, value: [VALUE]} or {name: NAME, secret: SECRET}"
            )
        value = item["value"]
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError(f"parameter '{item['name']}': value must be a list with exactly one string")
            value = value[0]
        out[str(item["name"])] = value
    return out


class OciOutput(Strict):
    type: Literal["oci"] = "oci"
    tag: str | None = Field(None, description="tag in the layout's index (default: the recipe version)")


class DiskOutput(DiskOptions):
    """A bootable VM disk (GPT, EFI system partition + root; systemd-boot for UEFI, SYSLINUX for BIOS)."""

    type: Literal["raw", "qcow2", "vmdk", "vhdx", "vhd"]

    @model_validator(mode="after")
    def _size_limit(self) -> DiskOutput:
        limit = DISK_MAX.get(self.type, DISK_MAX_DEFAULT)
        if self.size is not None and parse_size(self.size) > limit:
            raise ValueError(f"size: a {self.type} disk can be at most {limit >> 30}G")
        return self

    def options(self) -> DiskOptions:
        return DiskOptions(**self.model_dump(exclude={"type"}))


class ArchiveOutput(Strict):
    """A single-file form of the image: OCI archive, docker-archive (docker/podman load), root tar."""

    type: Literal["oci-archive", "docker-archive", "rootfs-tar"]


Output = Annotated[OciOutput | DiskOutput | ArchiveOutput, Field(discriminator="type")]


class ImageConfigSpec(Strict):
    """OCI image config settings."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    exposed_ports: list[str] = Field(default_factory=list)
    stop_signal: str | None = None

    @field_validator("exposed_ports")
    @classmethod
    def _ports(cls, value: list[str]) -> list[str]:
        for port in value:
            match = PORT.match(port)
            if match is None or not 0 < int(match.group(1)) < 65536:
                raise ValueError(f"exposed port {port!r} must be 1-65535, e.g. 80, 80/tcp or 53/udp")
        return value


class SlimSpec(Strict):
    """Slim images: no docs, man pages, other locales, apt caches, logs or ``__pycache__``."""

    keep_locales: list[str] = Field(default_factory=list, description="locales to keep, e.g. [de, pt_BR]")


class Settings(Strict):
    working_directory: str = Field("/tmp", description="where steps run inside the image")
    environment: dict[str, str] = Field(default_factory=dict, description="extra environment for steps")
    network: bool = Field(True, description="network access for build and validate steps")
    source_date_epoch: int | None = Field(
        None, description=f"timestamp for reproducible outputs, {EPOCH_MIN} (1980) to {EPOCH_MAX} (2107)"
    )
    compression_level: int = Field(6, ge=1, le=9, description="gzip level of OCI layers")
    test_instances: list[Literal["container", "vm"]] | None = Field(
        None,
        description="where test phases run: a fresh container instance (needs an oci output) and/or a "
        "qemu boot of the disk (needs a disk output); default: vm when there is a disk, else container",
    )
    test_timeout: int = Field(900, ge=30, le=86400, description="seconds a VM test boot may take in all")

    @field_validator("source_date_epoch")
    @classmethod
    def _epoch(cls, value: int | None) -> int | None:
        if value is not None and not EPOCH_MIN <= value <= EPOCH_MAX:
            raise ValueError(
                f"must be from {EPOCH_MIN} (1980-01-01) to {EPOCH_MAX} (2107-12-31): "
                "a disk's FAT boot partition cannot store other times"
            )
        return value

    @field_validator("working_directory")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path inside the image")
        return value


SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class SecretSpec(Strict):
    """A value a build needs but must never record: read at build time, shown to build and validate
    steps as the file ``/run/secrets/NAME`` (a tmpfs, never in a layer), masked as ``***`` in output."""

    name: str = Field(description="file name under /run/secrets (and the variable name with `env`)")
    source: str = Field(description="env:VARIABLE (Kiln's environment) or file:PATH (relative to the recipe)")
    env: bool = Field(False, description="also set the environment variable NAME in every step")
    affects_output: bool = Field(
        False,
        description="the value changes what the build produces: key cached layers on a keyed digest "
        "(HMAC) of it, so another value rebuilds instead of reusing a layer",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SECRET_NAME.match(value):
            raise ValueError("must be letters, digits and '_', not starting with a digit (at most 128)")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        kind, _, ref = value.partition(":")
        if kind == "env" and SECRET_NAME.match(ref):
            return value
        if kind == "file" and ref:
            return value
        raise ValueError(f"'{value}' is not env:VARIABLE or file:PATH")


class Recipe(Strict):
    """A versioned blueprint: parent + ordered components + outputs + settings."""

    name: str = Field(description="image name: lowercase letters, digits, '.', '_', '-'")
    version: str = Field(description="semantic version x.y.z; Kiln adds the build number")
    description: str = ""
    parent: ParentSpec
    components: list[ComponentRef] = Field(min_length=1)
    tests: list[ComponentRef] = Field(
        default_factory=list, description="test-only components: their test phase runs on a fresh instance"
    )
    outputs: list[Output] = Field(default_factory=lambda: list[Output]([OciOutput()]))
    slim: SlimSpec | None = Field(
        None, description="`true` or {keep_locales: [...]}: slim the parent and keep later installs slim"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    config: ImageConfigSpec = Field(default_factory=ImageConfigSpec)
    settings: Settings = Field(default_factory=Settings)
    scan: ScanGate | None = Field(None, description="vulnerability gate (needs `kiln vulndb import` first)")
    compliance: ComplianceGate | None = Field(None, description="run OpenSCAP in the build and gate on it")
    signing: SigningSettings | None = Field(None, description="sign the provenance (else KILN_SIGNING_KEY)")
    secrets: list[SecretSpec] = Field(
        default_factory=list, description="values steps need that are never recorded (see README: Secrets)"
    )
    distribution: Targets = Field(
        default_factory=list, description="where `kiln distribute` publishes the image (see README)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("must be lowercase letters, digits, '.', '_' or '-' (at most 128)")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _semver(cls, value: Any) -> str:
        if not SEMVER.match(str(value)):
            raise ValueError(f"'{value}' is not a semantic version x.y.z (e.g. 1.0.0)")
        return str(value)

    @field_validator("slim", mode="before")
    @classmethod
    def _slim_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("parent", mode="before")
    @classmethod
    def _parent_shorthand(cls, value: Any) -> Any:
        return {"image": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _test_instances_have_outputs(self) -> Recipe:
        kinds = {o.type for o in self.outputs}
        for instance in self.settings.test_instances or []:
            if instance == "container" and "oci" not in kinds:
                raise ValueError("settings.test_instances: 'container' needs an 'oci' output")
            if instance == "vm" and not kinds & {"raw", "qcow2", "vmdk", "vhdx", "vhd"}:
                raise ValueError("settings.test_instances: 'vm' needs a disk output (raw, qcow2, ...)")
        return self

    @model_validator(mode="after")
    def _secrets_consistent(self) -> Recipe:
        names = [s.name for s in self.secrets]
        for name in sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"secrets: '{name}' is declared twice")
        for spec in self.secrets:
            if spec.env and spec.name in self.settings.environment:
                raise ValueError(f"secrets: '{spec.name}' is also set in settings.environment")
        return self

    def test_instance_kinds(self) -> list[str]:
        if self.settings.test_instances is not None:
            return list(self.settings.test_instances)
        kinds = {o.type for o in self.outputs}
        if kinds & {"raw", "qcow2", "vmdk", "vhdx", "vhd"}:
            return ["vm"]
        return ["container"] if "oci" in kinds else []

    @field_validator("outputs", mode="before")
    @classmethod
    def _output_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"type": v} if isinstance(v, str) else v for v in value]
        return value
