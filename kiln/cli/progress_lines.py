"""What the progress display reads from tools' output lines: apt/dpkg package counts and download
bytes (mmdebstrap --verbose, ``apt-get install`` in a step) and the boot stages on a VM's console.

Each reader takes one line at a time and keeps counts; none of them changes what a build does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"B": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
_SIZE = r"([\d,.]+) (B|kB|MB|GB)"
_NEWLY = re.compile(r"^\d+ upgraded, (\d+) newly installed")
_NEED = re.compile(rf"^Need to get {_SIZE}(?:/{_SIZE})? of archives")
_GET = re.compile(rf"^Get:\d+ \S+ .*\[{_SIZE}\]$")
_FETCHED = re.compile(rf"^Fetched {_SIZE} in ")
_UNPACKING = re.compile(r"^Unpacking (\S+) ")
_SETTING_UP = re.compile(r"^Setting up (\S+) ")
_MMDEBSTRAP = re.compile(r"^I: (.+?)(?:\.\.\.)?$")


def _bytes(number: str, unit: str) -> int:
    return int(float(number.replace(",", "")) * _UNITS[unit])


@dataclass
class PackageProgress:
    """Packages unpacked and configured of the total apt announced, and archive bytes downloaded."""

    total: int = 0
    unpacked: int = 0
    configured: int = 0
    download_total: int = 0
    downloaded: int = 0
    downloading: bool = False
    activity: str = ""  # mmdebstrap's current "I: ..." phase
    last_package: str = ""

    @property
    def seen(self) -> bool:
        return bool(self.total or self.unpacked or self.configured or self.download_total or self.activity)

    def feed(self, line: str) -> None:
        text = line.strip()
        if match := _MMDEBSTRAP.match(text):
            self.activity = match[1]
        elif match := _NEWLY.match(text):
            self.total += int(match[1])
        elif match := _NEED.match(text):
            # "Need to get 1,234 kB/29.7 MB": the first size is what is left to download
            self.download_total += _bytes(match[1], match[2])
            self.downloading = True
        elif self.downloading and (match := _GET.match(text)):
            self.downloaded = min(self.download_total, self.downloaded + _bytes(match[1], match[2]))
        elif self.downloading and _FETCHED.match(text):
            self.downloaded, self.downloading = self.download_total, False
        elif match := _UNPACKING.match(text):
            self.unpacked += 1
            self.last_package = match[1]
        elif match := _SETTING_UP.match(text):
            self.configured += 1
            self.last_package = match[1]


# Console lines that mark how far a Debian guest has booted, in order (the first match wins).
BOOT_STAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("firmware", re.compile(r"BdsDxe|UEFI|SeaBIOS|iPXE|Booting from")),
    ("loader", re.compile(r"systemd-boot|EFI stub|SYSLINUX|Loading Linux")),
    ("kernel", re.compile(r"Linux version |\[\s*\d+\.\d+\] ")),
    ("initramfs", re.compile(r"Run /init|Loading, please wait|Begin: ")),
    ("systemd", re.compile(r"systemd\[1\]|Welcome to ")),
    ("services", re.compile(r"Reached target|Started |\[  OK  \]")),
    ("login", re.compile(r" login: ")),
)


_TARGET = re.compile(r"Reached target ([\w@.-]+\.target)")


@dataclass
class BootProgress:
    """The furthest boot stage seen on the console, and the last systemd target reached."""

    stage: str = ""
    target: str = ""
    lines: int = 0

    def feed(self, line: str) -> None:
        self.lines += 1
        order = [name for name, _ in BOOT_STAGES]
        for name, pattern in reversed(BOOT_STAGES):  # the furthest stage a line shows wins
            if pattern.search(line):
                if not self.stage or order.index(name) > order.index(self.stage):
                    self.stage = name
                break
        if match := _TARGET.search(line):
            self.target = match[1]

    @property
    def stages_seen(self) -> list[str]:
        """Every stage up to the furthest one seen (the display ticks them off)."""
        order = [name for name, _ in BOOT_STAGES]
        return order[: order.index(self.stage) + 1] if self.stage else []
