"""A throw-away PostgreSQL server for the catalog tests: initdb + pg_ctl in a temporary directory,
listening on 127.0.0.1 only, stopped and removed at the end of the session."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from kiln.sandbox.run import run
from tests.loopback import free_port


def find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


class PostgresServer:
    """A private server that a test can stop and start again (same data, same port)."""

    def __init__(self, base: Path, as_user: list[str], pg_ctl: str, port: int) -> None:
        self.base, self.as_user, self.pg_ctl, self.port = base, as_user, pg_ctl, port
        self.url = f"postgresql://kiln@127.0.0.1:{port}/"

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off "
                   "-c full_page_writes=off")  # fmt: skip
        run([*self.as_user, self.pg_ctl, "-D", self.base / "data", "-o", options, "-l",
             self.base / "server.log", "-w", "start"], timeout=60)  # fmt: skip

    def stop(self) -> None:
        run([*self.as_user, self.pg_ctl, "-D", self.base / "data", "-m", "immediate", "-w", "stop"],
            timeout=60, check=False)  # fmt: skip


@contextmanager
def postgres_instance() -> Iterator[PostgresServer]:
    """A running server (stopped and removed at the end); its ``url`` takes a database name."""
    initdb, pg_ctl = find_tool("initdb"), find_tool("pg_ctl")
    assert initdb and pg_ctl
    # PostgreSQL refuses to run as root: run it as the 'postgres' user when we are root.
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="kiln-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(base, as_user, pg_ctl, free_port())
    try:
        run(
            [*as_user, initdb, "-D", base / "data", "-U", "kiln", "--auth=trust", "-E", "UTF8", "--no-sync"],
            timeout=120,
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a URL prefix ``postgresql://kiln@127.0.0.1:PORT/`` (append a database name)."""
    with postgres_instance() as server:
        yield server.url


def create_database(server: str, name: str) -> str:
    """Create database ``name`` in ``server`` (a URL prefix as postgres_server yields); returns its URL."""
    _admin(server, f'CREATE DATABASE "{name}"')
    return server + name


@contextmanager
def fresh_database(server: str, prefix: str) -> Iterator[str]:
    """A new empty database in ``server`` named ``prefix`` plus a random suffix, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    yield create_database(server, name)
    _admin(server, f'DROP DATABASE "{name}" WITH (FORCE)')


def _admin(server: str, sql: str) -> None:
    admin = create_engine(server + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()
