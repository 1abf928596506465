"""Exit codes of every command, shown in its ``--help`` epilog and in ``kiln --help`` (README: the same).

The convention is Click's: 0 success, 1 the command ran and the answer is "no" (a build, test, gate or
verification failed), 2 a usage error or invalid input (unknown option, bad value, invalid recipe),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

COMMON = "2 usage error or invalid input (nothing was done); 130 interrupted"

EXIT_CODES: dict[str, str] = {
    "build": "0 built and recorded; 1 the build failed (recorded as failed, nothing published)",
    "validate": "0 every recipe is valid (warnings allowed)",
    "images": "0 shown, listed (also when nothing matches), labelled or changed; 1 no such image or label, "
    "or a state change that is not allowed (e.g. from retired), or retire not confirmed, "
    "or (outdated-packages) the image has no archive sources or its archive cannot be read",
    "diff": "0 compared (whether or not they differ); 1 no such image, or a layer cannot be read",
    "builds": "0 shown (with --log --follow: once the build has ended, whatever its outcome); "
    "1 no such build, or its log cannot be read here or from the shared store",
    "schema": "0 printed",
    "toe": "0 every document succeeded (run) or is valid (validate); 1 a document failed (run)",
    "sbom": "0 written; 1 the image cannot be read",
    "scan": "0 no finding at or above --fail-on remains (allow-listed ones excepted); "
    "1 findings remain, or the scan could not run",
    "vulndb": "0 imported or shown; 1 the feed cannot be read",
    "comply": "0 evaluated (whatever the score); 1 OpenSCAP could not evaluate, unknown profile",
    "keys": "0 key pair written; 1 the file exists (use --force)",
    "verify": "0 every check passed (an unsigned image: every digest; signature reported as not signed); "
    "1 a check failed, or the image is unsigned and --require-signature was given",
    "test": "0 every test passed; 1 a test failed",
    "gc": "0 reclaimed (or reported with --dry-run)",
    "components": "0 published (or already published, unchanged), listed, shown or deprecated; "
    "1 no such component or version, or the version is already published with other content "
    "(versions are immutable)",
    "recipes": "0 published (or already published, unchanged), listed or shown; 1 no such recipe or "
    "version, or the version is already published with other content (versions are immutable)",
    "events": "0 shown (with --follow: runs until interrupted)",
    "webhooks": "0 done; 1 no such webhook or delivery, or a delivery still pending; "
    "2 a refused URL (not http(s), private without --allow-private) or an invalid secret reference",
    "status": "0 shown; 2 also when the catalog is SQLite (there is no queue)",
    "worker": "0 stopped (SIGTERM, Ctrl-C; also while waiting for a lost database); "
    "2 also when the catalog is SQLite (a worker needs PostgreSQL)",
    "lifecycle": "0 planned (--dry-run) or every planned change made; "
    "1 a planned change was refused (the image changed since planning) or not confirmed",
    "pipelines": "0 applied, shown or queued; 1 no such pipeline or run; 2 also: a cascade cycle",
    "daemon": "0 stopped cleanly (SIGTERM), or --once and every run succeeded or was skipped; "
    "1 --once and a run failed or the --vulndb-source feed could not be imported, "
    "or another daemon runs on the data directory",
}


def epilog(command: str) -> str:
    """The ``--help`` epilog of a top-level command (group or single command)."""
    return f"Exit codes: {EXIT_CODES[command]}; {COMMON}."


def overview() -> str:
    """The epilog of ``kiln --help``: the convention, then every command's codes (one paragraph each)."""
    lines = [f"Exit codes: 0 success; 1 failure; {COMMON}."]
    lines += [f"{name}: {codes}." for name, codes in EXIT_CODES.items()]
    return "\n\n".join(lines)
