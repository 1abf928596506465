"""Recipe sections for evidence: ``scan``, ``compliance`` and ``signing`` (pydantic, extra=forbid).

Example::

    scan:
      fail_on: high            # fail the build on findings of this severity or worse
      only_fixable: true       # ...but only those with a fixed version available
      allow:
        - cve: CVE-2023-4911
          reason: not reachable, no setuid binaries in this image
          expires: 2026-12-31
    compliance:
      profile: standard        # or a full xccdf_org.ssgproject.content_profile_* id
      min_score: 90
      target: auto             # container | machine | auto (container unless a disk is built)
    signing:
      key: ~/.config/kiln/signing.key
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

GateSeverity = Literal["negligible", "low", "medium", "high", "critical"]
PROFILE_PREFIX = "xccdf_org.ssgproject.content_profile_"


class AllowEntry(BaseModel):
    """One allow-listed vulnerability (exported as an OpenVEX ``not_affected`` statement)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cve: str = Field(description="Vulnerability id, e.g. CVE-2024-1234.")
    reason: str = Field(min_length=1, description="Why it does not matter for this image (the VEX impact).")
    expires: date = Field(description="Date after which the entry stops suppressing the finding.")
    package: str | None = Field(default=None, description="Only for this source package (default: any).")

    @field_validator("cve")
    @classmethod
    def _cve(cls, value: str) -> str:
        if not re.fullmatch(r"(CVE-\d{4}-\d{4,}|[A-Z]+-[A-Za-z0-9-]+)", value):
            raise ValueError(f"not a vulnerability id: {value!r} (expected e.g. CVE-2024-1234)")
        return value


class ScanGate(BaseModel):
    """Vulnerability gate: the build fails if a finding at or above ``fail_on`` remains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_on: GateSeverity | None = Field(default=None, description="Lowest severity that fails the build.")
    only_fixable: bool = Field(default=False, description="Gate only on findings with a fixed version.")
    allow: list[AllowEntry] = Field(default_factory=list, description="Accepted vulnerabilities.")


class ComplianceGate(BaseModel):
    """Run OpenSCAP during the build; fail under ``min_score`` (percent of applicable rules passing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str = Field(default="standard", description="SSG profile id (short or full xccdf id).")
    min_score: float | None = Field(default=None, ge=0, le=100, description="Minimum score in percent.")
    target: Literal["auto", "container", "machine"] = Field(
        default="auto", description="Evaluate as a container or a machine (auto: machine if a disk is built)."
    )

    @property
    def profile_id(self) -> str:
        return self.profile if self.profile.startswith("xccdf_") else PROFILE_PREFIX + self.profile


class SigningSettings(BaseModel):
    """Sign the provenance with this ed25519 private key (made by ``kiln keys generate``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Path = Field(description="Path of the PEM private key (mode 0600).")

    @field_validator("key")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()
