"""The example debug-login component sets the root password it is given (and nothing else)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def root_hash(root: Path) -> str:
    line = next(x for x in (root / "etc/shadow").read_text().splitlines() if x.startswith("root:"))
    return line.split(":")[1]


def test_debug_login_sets_the_root_password(rootfs: Path, tmp_path: Path) -> None:
    assert root_hash(rootfs) in ("*", "!", "")  # a golden image: no password
    password = "debug-only pass'word"
    proc = subprocess.run(
        [sys.executable, "-m", "kiln.cli.main", "toe", "run", "--target", f"rootfs:{rootfs}",
         "--documents", str(REPO / "examples/components/debug-login.yaml"), "--phases", "build,validate",
         "--secret", "ROOT_PASSWORD=env:ROOT_PASSWORD", "--parameters", f"Password={password}",
         "--log-directory", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "KILN_HOME": str(tmp_path / "home"), "ROOT_PASSWORD": password},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert password not in proc.stdout + proc.stderr  # masked as a secret
    hashed = root_hash(rootfs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # libxcrypt: yescrypt, the hash chpasswd writes on Debian 12

    assert crypt.crypt(password, hashed) == hashed
    assert crypt.crypt("wrong", hashed) != hashed
