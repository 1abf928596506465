"""Image references (``name``, ``name@1.2.3``, ``name@1.2.3/4``) and build-process identity."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from kiln.errors import KilnError
from kiln.sandbox.namespace import host_identity, process_start

REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._-]*)"
    r"(?:@(?P<version>\d+\.\d+\.\d+)(?:/(?P<build>[1-9]\d*))?)?$"
)


@dataclass(frozen=True)
class ImageRef:
    name: str
    version: str | None = None
    build: int | None = None

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        m = REF.match(ref.strip())
        if not m:
            raise KilnError(
                f"invalid image reference {ref!r}",
                hint="write NAME, NAME@VERSION (x.y.z) or NAME@VERSION/BUILD, e.g. debian-web@1.0.0/2",
            )
        build = m.group("build")
        return cls(m.group("name"), m.group("version"), int(build) if build else None)

    def __str__(self) -> str:
        text = self.name
        if self.version:
            text += f"@{self.version}"
            if self.build is not None:
                text += f"/{self.build}"
        return text


def ref_name(ref: str) -> str:
    """The image name of any reference: ``name``, ``name@1.2.3/4``, ``kiln:name@prod`` (a channel)."""
    return ref.strip().removeprefix("kiln:").partition("@")[0]


def hostname() -> str:
    return socket.gethostname()


def process_alive(pid: int, start: int | None) -> bool:
    """Is the process that registered as (pid, start) still running on this host?"""
    current = process_start(pid)
    if current is None:
        return False
    return start is None or current == start


def this_process() -> tuple[int, int | None]:
    """(pid, start time) as the host sees them, also from inside a build's own PID namespace."""
    return host_identity()
