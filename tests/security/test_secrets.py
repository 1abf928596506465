"""Secrets reach steps (as /run/secrets files, optionally variables, and secret parameters) and
nothing else: not layers, cache metadata, the catalog, lock files, SBOMs, provenance, logs or the
terminal. The value is looked for, as bytes, in every file a build or a ``toe run`` left behind."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest

from kiln.build.keys import component_layer_key
from kiln.errors import ValidationFailed
from kiln.monitor import Event, ListMonitor, MaskingMonitor
from kiln.recipes.loader import load_recipe
from kiln.recipes.model import Settings
from kiln.rootfs.debian import ParentRoot
from kiln.sandbox.bwrap import SandboxOptions, sandbox_argv
from kiln.sandbox.run import loggable
from kiln.secrets import MASK, Masker, Secret, SecretError, Secrets, load_secrets, with_secret_env
from tests.conftest import TEST_CACHE
from tests.e2e.conftest import kiln

# --- masking and loading (no root, no sandbox) -------------------------------------------------


def test_mask_exact_value_and_value_inside_longer_lines() -> None:
    masker = Masker(["s3cr3t-value"])
    assert masker.mask("s3cr3t-value") == MASK
    assert masker.mask("token=s3cr3t-value; again s3cr3t-value!") == f"token={MASK}; again {MASK}!"
    assert masker.mask("s3cr3t-valu") == "s3cr3t-valu"  # a prefix is not the value
    assert masker.mask_data({"k": ["x s3cr3t-value", 3, ("s3cr3t-value",)], "s3cr3t-value": None}) == {
        "k": [f"x {MASK}", 3, (MASK,)],
        MASK: None,
    }


def test_mask_multiline_value_line_by_line() -> None:
    """Output arrives one line per event, so each line of a multi-line value is masked on its own;
    the whole value is masked where it appears whole (an error message with the output tail)."""
    value = "-----BEGIN KEY-----\nAAAAlineone\nBBBBlinetwo\nab\n-----END KEY-----\n"
    masker = Masker([value])
    assert masker.mask(f"before\n{value.strip()}\nafter") == f"before\n{MASK}\nafter"
    assert masker.mask("got AAAAlineone") == f"got {MASK}"
    assert masker.mask("BBBBlinetwo") == MASK
    assert masker.mask("ab cd") == "ab cd"  # lines shorter than 4 characters are not patterns


def test_overlapping_values_longest_first() -> None:
    masker = Masker(["abcd", "abcdefgh"])
    assert masker.mask("xabcdefghx abcd") == f"x{MASK}x {MASK}"


def test_short_and_missing_values_are_refused_without_showing_them(tmp_path: Path) -> None:
    class Spec:
        def __init__(self, source: str) -> None:
            self.name, self.source, self.env, self.affects_output = "TOKEN", source, False, False

    with pytest.raises(SecretError) as short:
        load_secrets([Spec("env:SHORT")], base_dir=tmp_path, environ={"SHORT": "ab1"})
    assert short.value.exit_code == 2 and "shorter than 4" in short.value.message
    assert "ab1" not in short.value.message
    with pytest.raises(SecretError, match="environment variable NOPE is not set"):
        load_secrets([Spec("env:NOPE")], base_dir=tmp_path, environ={})
    with pytest.raises(SecretError, match="cannot read"):
        load_secrets([Spec("file:missing.txt")], base_dir=tmp_path, environ={})
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(SecretError, match="not a regular file"):
        load_secrets([Spec("file:fifo")], base_dir=tmp_path, environ={})
    (tmp_path / "token.txt").write_text("from-a-file\n")
    loaded = load_secrets([Spec("file:token.txt")], base_dir=tmp_path, environ={})
    assert loaded.items[0].value == b"from-a-file\n" and "from-a-file" not in repr(loaded)
    assert loaded.masker.mask("x from-a-file y") == f"x {MASK} y"


def test_masking_monitor_masks_message_and_data_before_any_sink() -> None:
    sink = ListMonitor()
    monitor = MaskingMonitor(sink, Masker(["hunter22"]))
    monitor.emit(Event("output", message="pw hunter22", data={"failure": "exit 1\nhunter22"}))
    monitor.info("nothing here")
    assert [e.message for e in sink.events] == [f"pw {MASK}", "nothing here"]
    assert sink.events[0].data == {"failure": f"exit 1\n{MASK}"}


def test_command_line_logs_never_show_environment_values() -> None:
    assert loggable(["bwrap", "--setenv", "TOKEN", "v4lue", "--", "sh"]) == [
        "bwrap", "--setenv", "TOKEN", "***", "--", "sh",
    ]  # fmt: skip


def test_secret_variables_are_set_inside_the_sandbox_not_on_its_command_line(tmp_path: Path) -> None:
    argv = sandbox_argv(
        tmp_path,
        with_secret_env(["API_TOKEN"], ["/bin/true"]),
        SandboxOptions(secrets_dir=tmp_path / "s", network=False),
        seccomp_fd=3,
    )
    assert ["--ro-bind", str(tmp_path / "s"), "/run/secrets"] == argv[argv.index("/run/secrets") - 2 :][:3]
    assert argv.index("--tmpfs", argv.index("/tmp")) < argv.index("/run")  # a fresh /run under it
    assert 'API_TOKEN="$(cat /run/secrets/API_TOKEN)"' in argv[argv.index("--") + 3]


RECIPE_WITH_SECRET_PARAMETER = """\
name: params
version: 1.0.0
parent: debian:bookworm
secrets:
  - {name: API_TOKEN, source: "env:KILN_TEST_TOKEN", env: true}
components:
  - path: uses.yaml
    parameters:
      - {name: Token, secret: API_TOKEN}
      - {name: Plain, value: [visible]}
"""

USES = """\
name: uses
schemaVersion: 1.0
parameters:
  - Token: {type: string, description: from a secret}
  - Plain: {type: string, description: plain}
phases:
  - name: build
    steps:
      - name: Echo
        action: ExecuteBash
        inputs:
          commands: ["echo {{ Token }} {{ Plain }}"]
"""


def test_secret_parameters_are_recorded_by_name(tmp_path: Path) -> None:
    (tmp_path / "uses.yaml").write_text(USES)
    (tmp_path / "recipe.yaml").write_text(RECIPE_WITH_SECRET_PARAMETER)
    [component] = load_recipe(tmp_path / "recipe.yaml").components
    assert component.parameters == {"Token": "<secret:API_TOKEN>", "Plain": "visible"}
    assert component.secret_parameters == {"Token": "API_TOKEN"}
    (tmp_path / "recipe.yaml").write_text(RECIPE_WITH_SECRET_PARAMETER.replace("secret: API", "secret: NO"))
    with pytest.raises(ValidationFailed) as bad:
        load_recipe(tmp_path / "recipe.yaml")
    assert bad.value.exit_code == 2 and "no secret 'NO_TOKEN' is declared" in bad.value.message
    assert "recipe.yaml:8:" in bad.value.message  # at the component's parameters


def test_cache_key_ignores_the_value_unless_it_affects_output(tmp_path: Path) -> None:
    (tmp_path / "uses.yaml").write_text(USES)
    (tmp_path / "recipe.yaml").write_text(RECIPE_WITH_SECRET_PARAMETER)
    [component] = load_recipe(tmp_path / "recipe.yaml").components

    def key(value: bytes, affects: bool) -> tuple[str, dict[str, str]]:
        identity = Secrets((Secret("API_TOKEN", value, affects_output=affects),)).identity(tmp_path / "cache")
        return component_layer_key("prev", component, Settings(), 0, identity), identity

    assert key(b"first-value", False) == key(b"other-value", False)
    first, identity = key(b"first-value", True)
    assert first != key(b"other-value", True)[0] and first == key(b"first-value", True)[0]
    # A keyed digest: not the plain sha256 of the value, which would let a short value be guessed.
    assert hashlib.sha256(b"first-value").hexdigest() not in json.dumps(identity)
    assert oct((tmp_path / "cache/secrets.key").stat().st_mode & 0o777) == "0o600"


# --- real builds and toe runs ------------------------------------------------------------------

COMPONENT = """\
name: secret-user
schemaVersion: 1.0
parameters:
  - Token: {type: string, description: bound to the API_TOKEN secret}
  - Expected: {type: string, description: sha256 of the token}
  - ExpectedDb: {type: string, description: sha256 of the database password file}
phases:
  - name: build
    steps:
      - name: SeeIt
        action: ExecuteBash
        inputs:
          commands:
            - test "$(stat -c %a /run/secrets/API_TOKEN)" = 400
            - test "$(sha256sum < /run/secrets/API_TOKEN | cut -d' ' -f1)" = "{{ Expected }}"
            - test "$(printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1)" = "{{ Expected }}"
            - test "$(printf %s '{{ Token }}' | sha256sum | cut -d' ' -f1)" = "{{ Expected }}"
            - test "$(sha256sum < /run/secrets/DB_PASS | cut -d' ' -f1)" = "{{ ExpectedDb }}"
            - test -z "${DB_PASS:-}"
            - echo "token is $API_TOKEN and parameter {{ Token }}"
            - cat /run/secrets/DB_PASS
            - echo secret-ok > /etc/secret-check
  - name: validate
    steps:
      - name: StillThere
        action: ExecuteBash
        inputs:
          commands:
            - test "$(sha256sum < /run/secrets/API_TOKEN | cut -d' ' -f1)" = "{{ Expected }}"
            - echo "validate sees $API_TOKEN"
"""

FAILING = """\
name: secret-breaker
schemaVersion: 1.0
phases:
  - name: build
    steps:
      - name: ReadThenFail
        action: ExecuteBash
        inputs:
          commands:
            - echo "leaking $(cat /run/secrets/API_TOKEN) to stdout"
            - echo "and $API_TOKEN to stderr" >&2
            - exit 7
"""

RECIPE = """\
name: {name}
version: 1.0.0
parent: debian:bookworm
secrets:
  - {{name: API_TOKEN, source: "env:KILN_TEST_TOKEN", env: true}}
  - {{name: DB_PASS, source: "file:db-pass.txt"}}
components:
  - path: {component}
    parameters:
      - {{name: Token, secret: API_TOKEN}}
{more}settings:
  environment: {{NOT_SECRET: plain}}
"""


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_value() -> str:
    return f"tok-{uuid.uuid4().hex}"


def leaks(root: Path, values: list[str]) -> list[str]:
    """Files under ``root`` (symlinks not followed) holding a value, also inside gzip data."""
    needles = [v.encode() for v in values]
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            blobs = [data]
            if data[:2] == b"\x1f\x8b":
                with contextlib.suppress(OSError, EOFError, zlib.error):
                    blobs.append(gzip.decompress(data))
            found += [f"{path}: {n.decode()}" for n in needles if any(n in b for b in blobs)]
    return found


@pytest.fixture
def secret_home(tmp_path: Path) -> tuple[Path, Path]:
    """A data dir and a private cache (its layers start empty) sharing parents and .debs."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    cache.mkdir()
    for sub in ("parents", "debs", "apt"):
        (TEST_CACHE / sub).mkdir(parents=True, exist_ok=True)
        (cache / sub).symlink_to(TEST_CACHE / sub)
    return home, cache


def build(recipe: Path, home: Path, cache: Path, token: str, *args: str) -> Any:
    return kiln(
        "build", str(recipe), "--verbose", *args, home=home, check=False,
        env={"KILN_CACHE_DIR": str(cache), "KILN_TEST_TOKEN": token},
    )  # fmt: skip


@pytest.mark.e2e
@pytest.mark.root
def test_builds_keep_secrets_out_of_everything(tmp_path: Path, secret_home: tuple[Path, Path]) -> None:
    home, cache = secret_home
    db_pass = new_value()
    (tmp_path / "db-pass.txt").write_text(db_pass + "\n")
    (tmp_path / "secret-user.yaml").write_text(COMPONENT)
    (tmp_path / "secret-breaker.yaml").write_text(FAILING)
    first, second, third = new_value(), new_value(), new_value()
    more = f"      - {{name: Expected, value: [{sha(first)}]}}\n      - {{name: ExpectedDb, value: [{sha(db_pass + chr(10))}]}}\n"
    recipe = tmp_path / "secretive.yaml"
    recipe.write_text(RECIPE.format(name="secretive", component="secret-user.yaml", more=more))

    # 1. Success, steps run (they check the values they see), root kept.
    ok = build(recipe, home, cache, first, "--keep-rootfs", "--json")
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["ran_steps"] == 2  # build and validate steps ran (and passed their checks)
    kept = home / "kept" / result["build_id"]
    assert (kept / "etc/secret-check").read_text() == "secret-ok\n"
    assert not (kept / "run/secrets").exists()
    assert MASK in ok.stderr and "token is *** and parameter ***" in ok.stderr  # the terminal, masked
    layer_dirs = [p for p in (cache / "layers").iterdir() if (p / "layer.json").is_file()]
    assert layer_dirs and all(not (p / "upper/run").exists() for p in layer_dirs)  # no mount point trace
    image_dir = Path(next(a["path"] for a in result["image"]["artifacts"] if a["kind"] == "lock")).parent
    lock = json.loads((image_dir / "kiln.lock.json").read_text())
    assert lock["components"][0]["parameters"]["Token"] == "<secret:API_TOKEN>"
    provenance = next(e for e in result["image"]["evidence"] if e["kind"].startswith("provenance"))
    assert "API_TOKEN" in Path(provenance["path"]).read_text()  # the name is recorded

    # 2. Another value, same recipe: the layer is reused (the value is not in the key).
    again = build(recipe, home, cache, second, "--json")
    assert again.returncode == 0, again.stderr
    reused = json.loads(again.stdout)
    assert reused["ran_steps"] == 0 and reused["cached_layers"] == 2, reused  # parent + component

    # 3. A step reads the secret, prints it and fails; the root is kept.
    failing = tmp_path / "failing.yaml"
    failing.write_text(
        RECIPE.format(name="failing", component="secret-breaker.yaml", more="").replace(
            "    parameters:\n      - {name: Token, secret: API_TOKEN}\n", ""
        )
    )
    failed = build(failing, home, cache, third, "--keep-rootfs")
    assert failed.returncode == 1
    assert "leaking *** to stdout" in failed.stderr and "and *** to stderr" in failed.stderr
    builds = kiln("builds", "list", "--json", home=home).json()
    assert any(b["status"] == "failed" and "***" in (b.get("error") or "") for b in builds), builds

    outputs = ok.stdout + ok.stderr + again.stdout + again.stderr + failed.stdout + failed.stderr
    assert not [v for v in (first, second, third, db_pass) if v in outputs]
    assert leaks(home, [first, second, third, db_pass]) == []
    assert leaks(cache, [first, second, third, db_pass]) == []
    assert not list(home.glob("tmp/*")), "a build left its scratch (and the secrets tmpfs) behind"


TOE_DOC = """\
name: toe-secrets
schemaVersion: 1.0
parameters:
  - Expected: {type: string, description: sha256 of both secrets concatenated}
phases:
  - name: build
    steps:
      - name: Check
        action: ExecuteBash
        inputs:
          commands:
            - test "$(cat /run/secrets/FROM_ENV /run/secrets/FROM_FILE | sha256sum | cut -d' ' -f1)" = "{{ Expected }}"
            - test "$FROM_ENV" = "$(cat /run/secrets/FROM_ENV)"
            - echo "env $FROM_ENV file $(cat /run/secrets/FROM_FILE)"
            - touch /etc/toe-secret-ok
"""


@pytest.mark.e2e
@pytest.mark.root
def test_toe_run_secret_from_env_and_file(tmp_path: Path, bookworm_root: ParentRoot) -> None:
    from_env, from_file = new_value(), new_value()
    (tmp_path / "file-secret").write_text(from_file)
    (tmp_path / "doc.yaml").write_text(TOE_DOC)
    home, logs = tmp_path / "home", tmp_path / "logs"
    args = [
        "toe", "run", "--target", f"rootfs:{bookworm_root.rootfs}", "--scratch", "-d", str(tmp_path / "doc.yaml"),
        "--parameters", f"Expected={sha(from_env + from_file)}", "-l", str(logs),
        "--secret", "FROM_ENV=env:KILN_TEST_TOKEN", "--secret", f"FROM_FILE=file:{tmp_path / 'file-secret'}",
        "--secret-env", "--data-dir", str(home),
    ]  # fmt: skip
    run = kiln(*args, home=home, check=False, env={"KILN_TEST_TOKEN": from_env})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.json()["status"] == "success"
    assert f"env {MASK} file {MASK}" in run.stderr
    [folder] = logs.iterdir()
    assert f"env {MASK} file {MASK}" in (folder / "console.log").read_text()
    assert from_env not in run.stdout + run.stderr and from_file not in run.stdout + run.stderr
    assert leaks(logs, [from_env, from_file]) == [] and leaks(home, [from_env, from_file]) == []
    assert not (bookworm_root.rootfs / "etc/toe-secret-ok").exists()  # --scratch: the parent is untouched

    missing = kiln(*args, home=home, check=False, env={})
    assert missing.returncode == 2 and "KILN_TEST_TOKEN is not set" in missing.stderr
