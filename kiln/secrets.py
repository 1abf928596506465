"""Build secrets: read at run time, shown to steps on a tmpfs, masked in output, never recorded.

A secret comes from Kiln's environment (``env:VAR``) or a file (``file:PATH``). Steps see it as the
file ``/run/secrets/NAME`` (mode 0400, on a tmpfs mounted for the build only, bound read-only into the
sandbox) and, when asked, as the variable ``NAME``, set inside the sandbox from that file so the value
is never in any command line. Everything that leaves a step (events, logs, error messages, step
inputs/outputs, cache metadata) goes through :class:`Masker`, which replaces each value with ``***``.

Records hold the secret's name only. A cache key holds the name, and for ``affects_output`` secrets
an HMAC-SHA256 of the value under a random key kept in the cache directory (``secrets.key``, mode
0600): a key published in a lock file cannot be used to guess a short value offline.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kiln.errors import KilnError

MASK = "***"
MIN_LENGTH = 4  # shorter values are refused: masking them would garble every log line
MAX_BYTES = 1 << 20
MOUNT_POINT = "/run/secrets"


class SecretError(KilnError):
    """A secret cannot be read or is unusable (bad input: exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Secret:
    """One loaded secret. ``repr`` never shows the value."""

    name: str
    value: bytes = field(repr=False)
    env: bool = False
    affects_output: bool = False

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", "replace")


class Masker:
    """Replaces every secret value in text with ``***``.

    Output is masked line by line, so a multi-line value (a PEM key) is also masked line by line:
    each of its lines of at least ``MIN_LENGTH`` characters is a pattern of its own.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        patterns: set[str] = set()
        for value in values:
            whole = value.strip()
            if len(whole) >= MIN_LENGTH:
                patterns.add(whole)
            patterns.update(line.strip() for line in whole.splitlines() if len(line.strip()) >= MIN_LENGTH)
        ordered = sorted(patterns, key=lambda p: (-len(p), p))  # longest first: alternation is ordered
        self._pattern = re.compile("|".join(re.escape(p) for p in ordered)) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(MASK, text)

    def mask_data(self, data: Any) -> Any:
        """``data`` with every string in it (dict keys too) masked; other values unchanged."""
        if self._pattern is None:
            return data
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, dict):
            return {self.mask_data(k): self.mask_data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return type(data)(self.mask_data(v) for v in data)
        return data

    def scrub(self, exc: BaseException) -> None:
        """Mask a KilnError's message and hint in place (before it is printed or recorded)."""
        if self._pattern is not None and isinstance(exc, KilnError):
            exc.message = self.mask(exc.message)
            exc.hint = self.mask(exc.hint) if exc.hint else exc.hint
            exc.args = (exc.message,)


@dataclass(frozen=True)
class Secrets:
    """The secrets of one build or ``toe run``."""

    items: tuple[Secret, ...] = ()
    masker: Masker = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "masker", Masker(s.text for s in self.items))

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.items]

    @property
    def env_names(self) -> list[str]:
        return [s.name for s in self.items if s.env]

    def parameter_values(self, secret_parameters: Mapping[str, str]) -> dict[str, str]:
        """Parameter name -> the value of the secret it is bound to (run time only)."""
        by_name = {s.name: s for s in self.items}
        return {param: by_name[secret].text.rstrip("\r\n") for param, secret in secret_parameters.items()}

    def identity(self, cache: Path) -> dict[str, str]:
        """What a cache key may hold: each name, and a keyed digest of the ``affects_output`` values."""
        if not any(s.affects_output for s in self.items):
            return {s.name: "not-keyed" for s in self.items}
        key = cache_key_salt(cache)
        return {
            s.name: "hmac-sha256:" + hmac.new(key, s.value, hashlib.sha256).hexdigest()
            if s.affects_output
            else "not-keyed"
            for s in self.items
        }


def read_source(name: str, source: str, *, base_dir: Path, environ: Mapping[str, str]) -> bytes:
    """The value of ``env:VAR`` or ``file:PATH`` (relative to ``base_dir``); errors never show it."""
    kind, _, ref = source.partition(":")
    if kind == "env":
        if ref not in environ:
            raise SecretError(
                f"secret {name}: environment variable {ref} is not set",
                hint=f"export {ref}=... before running kiln",
            )
        value = environ[ref].encode("utf-8", "surrogateescape")
    elif kind == "file" and ref:
        path = base_dir / Path(ref).expanduser()
        try:
            if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would hang or never end
                raise SecretError(f"secret {name}: {path} is not a regular file")
            if path.stat().st_size > MAX_BYTES:
                raise SecretError(f"secret {name}: {path} is larger than {MAX_BYTES} bytes")
            value = path.read_bytes()
        except OSError as exc:
            raise SecretError(f"secret {name}: cannot read {path}: {exc.strerror}") from None
    else:
        raise SecretError(f"secret {name}: source '{source}' is not env:VARIABLE or file:PATH")
    if len(value.strip()) < MIN_LENGTH:
        raise SecretError(
            f"secret {name}: the value from {source} is shorter than {MIN_LENGTH} characters",
            hint="values this short cannot be masked in logs without garbling them, nor kept secret",
        )
    return value


def load_secrets(
    specs: Iterable[Any], *, base_dir: Path, environ: Mapping[str, str] | None = None
) -> Secrets:
    """Read each spec (anything with name, source, env, affects_output: a recipe's ``SecretSpec``)."""
    env = os.environ if environ is None else environ
    return Secrets(
        tuple(
            Secret(
                spec.name,
                read_source(spec.name, spec.source, base_dir=base_dir, environ=env),
                env=spec.env,
                affects_output=spec.affects_output,
            )
            for spec in specs
        )
    )


def parse_cli_secret(text: str) -> tuple[str, str]:
    """``NAME=env:VAR`` or ``NAME=file:PATH`` (``kiln toe run --secret``) -> (name, source)."""
    from kiln.recipes.model import SecretSpec

    name, sep, source = text.partition("=")
    if not sep:
        raise SecretError(f"--secret {text!r}: expected NAME=env:VARIABLE or NAME=file:PATH")
    try:
        SecretSpec(name=name, source=source)
    except ValueError as exc:
        raise SecretError(f"--secret {name}: {exc}") from None
    return name, source


def cache_key_salt(cache: Path) -> bytes:
    """The random HMAC key of a cache directory (created once, atomically, readable by its owner only)."""
    path = cache / "secrets.key"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".secrets.key.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
        try:
            os.link(tmp, path)  # fails if another build created it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes()


@contextmanager
def secrets_tmpfs(secrets: Secrets, where: Path) -> Iterator[Path | None]:
    """A tmpfs at ``where`` holding one 0400 file per secret; None when there are no secrets.

    In the build's private mount namespace the tmpfs dies with the process even on SIGKILL; it is
    unmounted (its pages freed) however the block ends.
    """
    if not secrets:
        yield None
        return
    from kiln.sandbox.overlay import umount
    from kiln.sandbox.run import run

    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    size = sum(len(s.value) for s in secrets.items) + (64 << 10)
    options = f"size={size},mode=0700,nodev,nosuid,noexec"
    done = run(["mount", "-t", "tmpfs", "-o", options, "kiln-secrets", str(where)], check=False)
    if done.returncode != 0:
        where.rmdir()
        raise SecretError(
            f"cannot mount a tmpfs for secrets at {where}: {done.stderr.strip()}",
            hint="secrets need root (as builds do), so their values never touch a disk",
        )
    try:
        for secret in secrets.items:
            fd = os.open(where / secret.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secret.value)
        yield where
    finally:
        umount(where)
        where.rmdir()


def with_secret_env(names: Sequence[str], argv: Sequence[str]) -> list[str]:
    """``argv`` started by a shell that exports each named secret from its file first: the value
    reaches the step's environment without ever being in a command line (trailing newlines dropped)."""
    if not names:
        return list(argv)
    exports = "".join(f'{n}="$(cat {MOUNT_POINT}/{n})" && export {n} && ' for n in names)
    return ["/bin/sh", "-c", exports + 'exec "$@"', "kiln-secrets", *argv]
