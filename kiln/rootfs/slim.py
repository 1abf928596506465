"""``slim``: remove from a Debian/Ubuntu root what a container never needs, and keep it that way.

The documentation/locale rules follow Debian's official ``-slim`` images, as built by debuerreotype
(``scripts/debuerreotype-slimify`` with ``.slimify-excludes``/``.slimify-includes``, plus the paths
``.tar-exclude`` leaves out of every image): everything under ``/usr/share/{doc,groff,info,linda,
lintian/overrides,locale,man}`` goes, except copyright files and a few locale metadata files, and a
dpkg configuration with the same ``path-exclude``/``path-include`` rules keeps later package installs
slim. Kiln additionally drops apt lists and caches, empties logs and removes ``__pycache__``
directories, and can keep chosen locales.

Matching follows dpkg's filters: ``fnmatch`` without FNM_PATHNAME, so ``*`` also matches ``/``.
Nothing outside the root is ever touched: symlinks are removed or judged, never followed out.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from kiln.errors import KilnError
from kiln.sandbox.paths import PathEscapeError, resolve_in_root

SLIMIFY_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/groff/*",
    "/usr/share/info/*",
    "/usr/share/linda/*",
    "/usr/share/lintian/overrides/*",
    "/usr/share/locale/*",
    "/usr/share/man/*",
)
SLIMIFY_INCLUDES = (
    "/usr/share/doc/*/copyright",
    "/usr/share/doc/kde/HTML/C/*",
    "/usr/share/gnome/help/*/C/*",
    "/usr/share/locale/all_languages",
    "/usr/share/locale/currency/*",
    "/usr/share/locale/l10n/*",
    "/usr/share/locale/languages",
    "/usr/share/locale/locale.alias",
    "/usr/share/omf/*/*-C.emf",
)
DPKG_CONFIG = "etc/dpkg/dpkg.cfg.d/kiln-slim"
ROTATED_LOG = re.compile(r".*(?:\.[0-9]+|\.gz|\.xz|\.bz2|\.zst|\.old)$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:_[A-Za-z]{2})?(?:\.[A-Za-z0-9-]+)?(?:@[A-Za-z0-9]+)?$")
_NEVER_DESCEND = frozenset({"proc", "sys", "dev"})


class SlimError(KilnError):
    """The slim options are invalid or the root is not one slim can work on."""


@dataclass(frozen=True)
class SlimOptions:
    """What to remove. The defaults are Kiln's ``slim: true``."""

    keep_locales: tuple[str, ...] = ()
    docs: bool = True
    """Docs, man/info pages, groff and lintian data and locales (the debuerreotype slimify rules)."""
    apt_lists: bool = True
    apt_caches: bool = True
    logs: bool = True
    pycache: bool = True
    dpkg_config: bool = True
    """Write ``/etc/dpkg/dpkg.cfg.d/kiln-slim`` so packages installed later stay slim."""

    @classmethod
    def debian_slim(cls) -> SlimOptions:
        """What Debian's official ``bookworm-slim`` image removes (slimify + the tar excludes)."""
        return cls(logs=False, pycache=False)

    def includes(self) -> tuple[str, ...]:
        extra: list[str] = []
        for locale in self.keep_locales:
            if not _LOCALE.match(locale):
                raise SlimError(
                    f"invalid locale name {locale!r} in keep_locales", hint="e.g. de, pt_BR, sr@latin"
                )
            extra.append(f"/usr/share/locale/{locale}/*")
            if "_" not in locale:
                extra.append(f"/usr/share/locale/{locale}_*/*")
            if "@" not in locale:
                extra.append(f"/usr/share/locale/{locale}@*/*")
        return SLIMIFY_INCLUDES + tuple(extra)


@dataclass
class SlimReport:
    """Bytes of file content (each inode once) before and after, and what each rule removed."""

    size_before: int
    size_after: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    """Rule name → number of files removed (or truncated, for logs)."""

    @property
    def saved(self) -> int:
        return self.size_before - self.size_after


def tree_size(root: Path) -> int:
    """Content bytes under ``root``: regular files, each inode counted once; never leaves the tree."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in ("proc", "sys")]
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))  # noqa: PTH118 - hot loop
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _real_dir(root: Path, inside: str) -> Path | None:
    """Host path of the image directory ``inside`` if every component is a real directory."""
    path = root
    for part in inside.strip("/").split("/"):
        path = path / part
        if not path.is_dir() or path.is_symlink():
            return None
    return path


def _walk_bottom_up(base: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    for dirpath, dirnames, filenames in os.walk(base, topdown=False):
        yield Path(dirpath), dirnames, filenames


def _dangling(root: Path, link: Path) -> bool:
    """Whether a symlink's target, resolved inside ``root``, is missing (or the link loops)."""
    try:
        target = resolve_in_root(root, "/" + str(link.relative_to(root)))
    except PathEscapeError:
        return True
    return not os.path.lexists(target)


def _apply_exclude(root: Path, pattern: str, includes: tuple[str, ...]) -> int:
    """debuerreotype's two passes for one ``<dir>/*`` exclude; returns files removed."""
    base_inside = pattern.removesuffix("/*")
    base = _real_dir(root, base_inside)
    if base is None:
        return 0
    removed = 0
    for dirpath, dirnames, filenames in _walk_bottom_up(base):
        for name in filenames + dirnames:
            path = dirpath / name
            inside = "/" + str(path.relative_to(root))
            if path.is_symlink() or path.is_dir():
                continue
            if fnmatchcase(inside, pattern) and not any(fnmatchcase(inside, inc) for inc in includes):
                path.unlink()
                removed += 1
    # Repeatedly remove dangling symlinks and empty directories (one can make the other).
    changed = True
    while changed:
        changed = False
        for dirpath, dirnames, filenames in _walk_bottom_up(base):
            for name in filenames + dirnames:
                path = dirpath / name
                if path.is_symlink():
                    if _dangling(root, path):
                        path.unlink()
                        changed = True
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
                    changed = True
    return removed


def _empty_dir(root: Path, inside: str, keep: tuple[str, ...] = ()) -> int:
    directory = _real_dir(root, inside)
    if directory is None:
        return 0
    removed = 0
    for child in directory.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            removed += sum(len(files) for _, _, files in os.walk(child))
            shutil.rmtree(child)
        else:
            child.unlink()
            removed += 1
    return removed


def _remove_matching(root: Path, inside: str, pattern: str) -> int:
    directory = _real_dir(root, inside)
    if directory is None:
        return 0
    removed = 0
    for child in directory.iterdir():
        if fnmatchcase(child.name, pattern) and (child.is_symlink() or child.is_file()):
            child.unlink()
            removed += 1
    return removed


def _apt_caches(root: Path) -> int:
    return (
        _remove_matching(root, "/var/cache/apt", "*.bin")
        + _remove_matching(root, "/var/cache/apt/archives", "*.deb")
        + _empty_dir(root, "/var/cache/apt/archives/partial")
        + _remove_matching(root, "/var/cache/debconf", "*-old")
        + _remove_matching(root, "/var/lib/dpkg", "*-old")
    )


def _logs(root: Path) -> int:
    base = _real_dir(root, "/var/log")
    if base is None:
        return 0
    count = 0
    for dirpath, _dirnames, filenames in _walk_bottom_up(base):
        for name in filenames:
            path = dirpath / name
            if path.is_symlink() or not path.is_file():
                continue
            if ROTATED_LOG.match(name) or dirpath.name == "journal" or dirpath.parent.name == "journal":
                path.unlink()
                count += 1
            elif path.stat().st_size:
                os.truncate(path, 0)
                count += 1
    return count


def _pycache(root: Path) -> int:
    count = 0
    for dirpath, dirnames, _filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in _NEVER_DESCEND]
        if "__pycache__" in dirnames:
            cache = Path(dirpath, "__pycache__")
            if not cache.is_symlink():
                count += sum(len(files) for _, _, files in os.walk(cache))
                shutil.rmtree(cache)
            dirnames.remove("__pycache__")
    return count


def _write_dpkg_config(root: Path, includes: tuple[str, ...]) -> None:
    cfg_dir = _real_dir(root, "/etc/dpkg/dpkg.cfg.d")
    if cfg_dir is None:
        return
    lines = [
        "# Written by Kiln's slim option (same rules as Debian's -slim images, see debuerreotype):",
        "# files normally unneeded in containers are excluded, and this keeps them that way.",
        *(f"path-exclude {p}" for p in SLIMIFY_EXCLUDES),
        *(f"path-include {p}" for p in includes),
    ]
    target = cfg_dir / "kiln-slim"
    if target.is_symlink():
        target.unlink()
    target.write_text("\n".join(lines) + "\n")
    target.chmod(0o644)


def slim(root: Path, options: SlimOptions | None = None) -> SlimReport:
    """Slim the root filesystem at ``root`` in place; returns the sizes before and after."""
    options = options or SlimOptions()
    includes = options.includes()  # validates before anything is removed
    if not root.is_dir() or root.is_symlink():
        raise SlimError(f"not a root directory: {root}")
    report = SlimReport(size_before=tree_size(root))
    if options.docs:
        for pattern in SLIMIFY_EXCLUDES:
            report.removed[pattern] = _apply_exclude(root, pattern, includes)
        if options.dpkg_config:
            _write_dpkg_config(root, includes)
    if options.apt_lists:
        report.removed["apt lists"] = _empty_dir(root, "/var/lib/apt/lists", keep=("lock", "partial"))
        report.removed["apt lists"] += _empty_dir(root, "/var/lib/apt/lists/partial")
    if options.apt_caches:
        report.removed["apt caches"] = _apt_caches(root)
    if options.logs:
        report.removed["logs"] = _logs(root)
    if options.pycache:
        report.removed["__pycache__"] = _pycache(root)
    report.size_after = tree_size(root)
    return report
