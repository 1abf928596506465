"""The README's "Common tasks with curl" block, run line by line with the real curl (and jq) against a
real ``kiln serve`` whose catalog has the images, pipeline, channel and files the examples name. Every
line must succeed (curl --fail-with-body: HTTP errors fail it), except those that start a real build,
which tests/api/test_submit.py covers through the same calls."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.catalog import Catalog, promotions
from kiln.catalog.labels import set_labels
from kiln.evidence.signing import generate_key
from kiln.store import Store
from tests.api.seed import COMPONENT, PIPELINE, RECIPE, record_image
from tests.api.server import kiln_serve

README = Path(__file__).resolve().parents[2] / "README.md"
NOT_RUN = {  # (a part of the line) → why it is not run here
    '-X POST "$API/builds"': "starts a real build (tests/api/test_submit.py)",
    '"$API/pipelines/debian-web/runs" -H': "queues a real build (tests/api/test_fleet_lifecycle.py)",
    '"$API/builds/<id>/cancel"': "needs a running build (tests/api/test_submit.py)",
}
MOTD = COMPONENT.replace("name: greeting", "name: motd")
PUBLISHED = (
    "name: debian-web\nversion: 2.0.0\nparent: {image: 'debian:bookworm'}\ncomponents: [update-os@1.x]\n"
)

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")), reason="make deps: curl, jq"
)


def curl_lines() -> list[str]:
    """The logical lines (continuations joined) of the block after "Common tasks with curl"."""
    text = README.read_text()
    start = text.index("Common tasks with curl")
    block = re.search(r"```\n(.*?)```", text[start:], re.S)
    assert block, "no code block after 'Common tasks with curl'"
    return [line for line in block[1].replace("\\\n", " ").splitlines() if line.strip()]


def real_layout(store: Store, ref: str, build_id: str, motd: str) -> None:
    """Replace the seeded image's placeholder OCI folder with a real one-layer layout (for diff files=true)."""
    from kiln.layers.tar import write_layer
    from kiln.outputs.oci import History, ImageConfig, write_oci_layout

    name, _, version = ref.partition("@")
    out = store.output_dir(name, version.partition("/")[0], build_id)
    tree = out / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/motd").write_text(motd)
    layer = write_layer(tree, out / "layer.tar.gz", epoch=1_700_000_000, kind="rootfs")
    shutil.rmtree(out / "oci")
    config = ImageConfig(created=datetime(2026, 11, 30, tzinfo=UTC), cmd=("/bin/sh",))
    write_oci_layout(out / "oci", [layer], config, history=[History("rootfs")], annotations={}, tag="1")


def seed_catalog(home: Path) -> str:
    """The README's names: org-base@1.2.0/1 ← debian-web@1.0.0/1 (signed provenance) and @1.0.1/1 (in
    the dev channel), pipeline debian-web; returns a build id."""
    store = Store.open_at(home, home / "cache")
    with Catalog.open(store.database_url) as catalog:
        base, _, _ = record_image(catalog, store, "org-base", "1.2.0", "debian:bookworm")
        web, build_id, _ = record_image(catalog, store, "debian-web", "1.0.0", base,
                                        provenance={"payloadType": "application/vnd.in-toto+json"})  # fmt: skip
        newer, newer_id, _ = record_image(catalog, store, "debian-web", "1.0.1", base)
        real_layout(store, web, build_id, "hello\n")
        real_layout(store, newer, newer_id, "moin\n")
        set_labels(catalog, web, {"team": "payments"})
        promotions.record(catalog, newer, channel="dev", action="promote", allowed=True,
                          decision={"rules": []}, envelope=None, who="seed", at=datetime.now(UTC))  # fmt: skip
        from kiln.pipelines.load import load_pipelines
        from kiln.pipelines.recipes import PipelineRecipes
        from kiln.pipelines.store import PipelineStore

        folder = home / "pipelines"
        folder.mkdir()
        (folder / "web.recipe.yaml").write_text(RECIPE)
        (folder / "greeting.yaml").write_text(COMPONENT)
        (folder / "debian-web.yaml").write_text(PIPELINE.replace("web-nightly", "debian-web"))
        PipelineStore(catalog).apply(
            load_pipelines(folder / "debian-web.yaml", PipelineRecipes(catalog)), datetime.now(UTC)
        )
    return build_id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(API base URL, admin token, a build id) of a live server; the server signs promotions."""
    home = tmp_path_factory.mktemp("readme-home")
    build_id = seed_catalog(home)
    key = tmp_path_factory.mktemp("readme-key") / "signing.key"
    generate_key(key)
    store = Store.open_at(home, home / "cache")
    with Catalog.open(store.database_url) as catalog:
        token, _ = create_token(catalog, server_secret(store.home), "readme", ["admin"], None)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KILN_SIGNING_KEY", str(key))  # before the server starts: it reads it then
        with kiln_serve(home, "--no-webhooks") as url:
            yield url + "/api/v1", token, build_id


def test_the_block_is_found() -> None:
    lines = curl_lines()
    assert lines[0] == 'H="Authorization: Bearer $KILN_TOKEN"' and len(lines) > 35
    assert all(line.startswith("curl ") for line in lines[1:]), [
        x for x in lines[1:] if not x.startswith("curl")
    ]
    for part in NOT_RUN:
        assert any(part in line for line in lines), f"README no longer has {part!r}: update NOT_RUN"


def test_every_curl_example_works(server: tuple[str, str, str], tmp_path: Path) -> None:
    api, token, build_id = server
    (tmp_path / "motd.yaml").write_text(MOTD)
    (tmp_path / "published.yaml").write_text(PUBLISHED)
    env = {**os.environ, "API": api, "KILN_TOKEN": token}
    # Each curl fails on an HTTP error status and gives up after 20 s; the event stream never ends
    # by itself, so it is cut after 3 s and must have sent its first frame by then.
    wrapper = 'curl() { command curl -sS --fail-with-body --max-time "${MAX_TIME:-20}" "$@"; local rc=$?; echo; return $rc; }\n'
    ran, failed = [], []
    for line in curl_lines()[1:]:
        if any(part in line for part in NOT_RUN):
            continue
        command = line.replace("<id>", build_id)
        stream = "/events/stream" in command
        script = (
            wrapper + 'H="Authorization: Bearer $KILN_TOKEN"\n' + ("MAX_TIME=3 " if stream else "") + command
        )
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
        if stream:  # curl exits 28 (time-out) on a stream that is still open
            ok = done.returncode == 28 and done.stdout.startswith("retry: 3000")
        else:
            ok = done.returncode == 0
        if not ok:
            failed.append(f"{line}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr}")
        ran.append(line)
    assert not failed, "\n".join(failed)
    assert len(ran) >= 35
    assert (tmp_path / "sbom.spdx.json").read_bytes().startswith(b"{")
    assert (tmp_path / "head.bin").read_bytes() == bytes(range(256)) * 4  # bytes=0-1023 of the tarball
    assert (tmp_path / "rootfs.tar.gz").stat().st_size == 10240
    (line,) = [line for line in curl_lines() if "files=true" in line]
    script = wrapper + 'H="Authorization: Bearer $KILN_TOKEN"\n' + line
    full_diff = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, check=True)
    assert '"path":"etc/motd","change":"changed"' in full_diff.stdout  # the real layouts were compared
