"""apt's shared lists and archive for ``kiln toe run`` on a root filesystem, as in a build.

A build's steps see apt's lists and the ``.deb`` cache of the data dir (kept outside the image, keyed
by the parent's apt sources; :mod:`kiln.sandbox.cachebind`). A root made by a bootstrap has empty
lists, so without them ``apt-get install nginx`` finds nothing. ``kiln toe run`` reads the target
root's one-line sources, binds the same shared state through private copy-on-write views (so a
Kiln parent's root sees the lists its bootstrap fetched) and, when that state has no lists yet and
the run has network, runs ``apt-get update`` once in the sandbox; verified lists flow back into
the shared cache for the next run and build.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.monitor import Monitor
from kiln.sandbox.bwrap import Bind, SandboxOptions
from kiln.sandbox.cachebind import ARCHIVES, LISTS, archive_keyrings, cache_views
from kiln.sandbox.launch import run_in_sandbox
from kiln.store import Store


def root_sources(root: Path) -> list[str]:
    """The root's one-line apt sources (``sources.list``, then ``sources.list.d/*.list``), in the
    form a bootstrap's apt state is keyed by; deb822 ``*.sources`` files count as their text."""
    apt = root / "etc/apt"
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    lines: list[str] = []
    for path in files:
        if path.is_file() and not path.is_symlink():
            text = path.read_text(encoding="utf-8", errors="replace")
            lines += [
                ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
            ]
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        if path.is_file() and not path.is_symlink():
            lines.append(path.read_text(encoding="utf-8", errors="replace").strip())
    return lines


def _has_lists(lists: Path) -> bool:
    return any(lists.glob("*_Packages")) or any(lists.glob("*_Packages.*"))


@contextmanager
def apt_views(
    store: Store, root: Path, scratch: Path, monitor: Monitor, *, network: bool
) -> Iterator[tuple[Bind, ...]]:
    """Binds of apt's shared lists, binary caches and ``.deb`` cache for steps in ``root`` (none
    when the root has no apt sources); apt's state is locked for the block, as in a build."""
    sources = root_sources(root)
    if not sources or not (root / "usr/bin/apt-get").exists():
        yield ()
        return
    state = store.apt_state_for(sources)
    shared = [
        Bind(state / "lists", LISTS, cow=True),
        Bind(state / "cache", "/var/cache/apt", cow=True),
        Bind(store.deb_cache, ARCHIVES, cow=True),
    ]
    with store.apt_lock(), cache_views(shared, scratch, archive_keyrings(root)) as views:
        if not _has_lists(state / "lists") and network:
            monitor.info("apt: no package lists for this root's sources yet: apt-get update")
            done = run_in_sandbox(root, ["apt-get", "update", "-q"], SandboxOptions(binds=views), check=False)
            if done.returncode != 0:
                monitor.warning(f"apt-get update failed (exit code {done.returncode}): {done.tail}")
        yield views
