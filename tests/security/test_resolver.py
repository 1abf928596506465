"""With network on, a step's name resolution goes to pasta's DNS forwarder, for every user in it."""

from __future__ import annotations

from pathlib import Path

from tests.security.conftest import sandboxed


def test_unprivileged_users_in_the_step_can_read_its_resolver_configuration(root: Path) -> None:
    """apt resolves names as its _apt user: the generated resolv.conf must be world-readable, or every
    apt-get update fails name resolution (and, with cached lists, only warns)."""
    done = sandboxed(root, "setpriv --reuid=_apt --regid=nogroup --clear-groups cat /etc/resolv.conf",
                     network=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "nameserver 169.254.1.1" in done.stdout
