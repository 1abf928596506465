"""``kiln vulndb import PATH|URL``: fetch (if a URL), detect the feed format, replace it atomically."""

from __future__ import annotations

from pathlib import Path

from kiln.evidence.feeds import FeedError, debian_tracker, detect_kind, digest_of, osv
from kiln.evidence.vulndb import SourceInfo, VulnDb
from kiln.monitor import Monitor
from kiln.store import Store

KINDS = {debian_tracker.KIND: debian_tracker, osv.KIND: osv}


def _download(url: str, target: Path) -> Path:
    import httpx  # imported lazily: ~0.3 s of start-up for every command that never downloads

    name = url.rstrip("/").rsplit("/", 1)[-1] or "feed"
    path = target / name
    try:
        with httpx.stream("GET", url, timeout=120, follow_redirects=True) as response:
            response.raise_for_status()
            with open(path, "wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        raise FeedError(f"cannot download {url}: {exc}", hint="check the URL and network access") from exc
    return path


def import_feed(
    store: Store, location: str, monitor: Monitor, *, kind: str | None = None, fetched: Path | None = None
) -> SourceInfo:
    """Import one feed file/dir/zip or URL into the store's vulnerability database (``fetched``: a
    copy of the URL's feed already downloaded, as the daemon's conditional fetch does)."""
    with store.scratch("vulndb-") as scratch, monitor.stage("vulndb", f"import {location}") as result:
        if fetched is not None:
            path = fetched
        elif location.startswith(("http://", "https://")):
            path = _download(location, scratch)
        else:
            path = Path(location)
            if not path.exists():
                raise FeedError(f"{location}: no such file or directory")
        kind = kind or detect_kind(path)
        if kind not in KINDS:
            raise FeedError(f"unknown feed kind {kind!r}", hint=f"use one of: {', '.join(sorted(KINDS))}")
        info = SourceInfo(kind, kind, location, digest_of(path), 0.0, 0, 0)
        final = VulnDb.open(store).replace_source(info, KINDS[kind].records(path))
        result.update(records=final.records, vulnerabilities=final.vulnerabilities, source=kind)
    return final
