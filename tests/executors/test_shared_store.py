"""Three machines that share only PostgreSQL and an S3 store (moto's server on 127.0.0.1): the API server
in one data directory queues an uploaded recipe, a ``kiln worker`` in another builds it from the request
alone, and a reader in a third follows the log live, verifies the image and reads its SBOM; the server
serves the artifacts, all fetched from the store by digest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kiln.access.secret import server_secret
from kiln.access.tokens import create_token
from kiln.api.app import create_app
from kiln.api.config import ApiConfig
from kiln.catalog import Catalog
from kiln.settings import Settings
from kiln.store import Store
from tests.distribute.servers import moto
from tests.documents import chatty_component, recipe_yaml
from tests.executors.test_queue import KILN, Workers, env_for, status, wait_for


@pytest.fixture
def s3_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with moto(tmp_path / "moto") as endpoint:
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test",
                            "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
            monkeypatch.setenv(name, value)  # the API in this process and every kiln process inherit it
        import boto3

        boto3.client("s3").create_bucket(Bucket="kiln-site")
        yield "s3://kiln-site/builds"


@pytest.fixture
def workers(queue_url: str, s3_store: str, tmp_path: Path) -> Iterator[Workers]:
    with Catalog.open(queue_url):
        pass
    running = Workers(queue_url, tmp_path / "workers")
    try:
        yield running
    finally:
        running.stop_all()


def kiln(args: list[str], url: str, home: Path, store_url: str) -> subprocess.CompletedProcess[str]:
    env = {**env_for(url, home), "KILN_STORE_URL": store_url}
    return subprocess.run([str(KILN), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_uploaded_build_on_one_machine_read_on_others(
    workers: Workers, queue_url: str, s3_store: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=queue_url, store_url=s3_store)
    server = Store.open(tmp_path / "server", settings)
    with Catalog.open(queue_url) as catalog:
        token, _ = create_token(catalog, server_secret(server.home), "ci", ["builds:write", "builds:read",
                                                                             "images:read"], None)  # fmt: skip
    auth = {"Authorization": f"Bearer {token}"}
    workers.store_url = s3_store
    workers.start("builder")
    reader = tmp_path / "reader"
    app = create_app(ApiConfig(data_dir=server.home, settings=settings))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        body = {"recipe": recipe_yaml("shared", "chatty.yaml"),
                "components": {"chatty.yaml": chatty_component(f"hello-from-the-worker {uuid.uuid4().hex}", "goodbye-from-the-worker")}}  # fmt: skip
        submitted = client.post("/api/v1/builds", json=body, headers=auth)
        assert submitted.status_code == 202, submitted.text
        build_id = submitted.json()["build_id"]
        shutil.rmtree(server.home / "uploads")  # the worker builds from the request alone

        # A reader on a third machine follows the log while the build runs on the worker.
        env = {**env_for(queue_url, reader), "KILN_STORE_URL": s3_store}
        follower = subprocess.Popen([str(KILN), "builds", "show", build_id, "--log", "--follow"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        wait_for(lambda: status(queue_url, build_id) != "queued", 60, "the worker starts the build")
        assert status(queue_url, build_id) == "running"
        assert follower.stdout is not None
        lines, live = [], None
        for line in follower.stdout:  # printed as the worker ships it, while the build still runs
            lines.append(line)
            if "hello-from-the-worker" in line:
                live = status(queue_url, build_id)
        out, err = "".join(lines), follower.communicate(timeout=60)[1]
        assert follower.returncode == 0, err
        assert live == "running", out[-2000:]
        assert status(queue_url, build_id) == "succeeded", out[-3000:]
        assert "goodbye-from-the-worker" in out, out[-2000:] + err
        assert out.index("hello-from-the-worker") < out.index("goodbye-from-the-worker")

        with Catalog.open(queue_url) as catalog:
            image = catalog.get_image("shared")
        worker_home = tmp_path / "workers" / "builder"
        assert all(a.path.startswith(str(worker_home)) for a in image.artifacts)  # written there only
        assert list((worker_home / "uploads").glob("*/chatty.yaml"))
        assert not (reader / "images").exists() or not any((reader / "images").iterdir())

        # The server (its own data directory) serves the artifacts, fetched from the store, verified.
        name, rest = image.ref.split("@")
        version, build = rest.split("/")
        base = f"/api/v1/images/{name}/{version}/{build}"
        for index, artifact in enumerate(image.artifacts):
            got = client.get(f"{base}/artifacts/{index}", headers=auth)
            assert got.status_code == 200, got.text
            if artifact.kind == "oci":
                files = {f["path"] for f in got.json()}
                assert f"blobs/sha256/{artifact.digest.removeprefix('sha256:')}" in files
                assert "index.json" in files
                manifest = client.get(f"{base}/artifacts/{index}/files/blobs/sha256/"
                                      f"{artifact.digest.removeprefix('sha256:')}", headers=auth)  # fmt: skip
                assert "sha256:" + hashlib.sha256(manifest.content).hexdigest() == artifact.digest
            else:
                assert "sha256:" + hashlib.sha256(got.content).hexdigest() == artifact.digest
        logged = client.get(f"/api/v1/builds/{build_id}/log", headers=auth)
        assert logged.status_code == 200 and "goodbye-from-the-worker" in logged.text
        verified = client.get(f"{base}/verification", headers=auth)
        assert verified.status_code == 200, verified.text
        assert list((server.home / "remote").glob("*/*/oci/blobs/sha256/*"))  # fetched, not shared

    # The reader verifies the image against its artifacts and reads the recorded SBOM.
    checked = kiln(["verify", image.ref, "--json"], queue_url, reader, s3_store)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["checks"] and all(c["ok"] or c["skipped"] for c in report["checks"])
    assert [p.parent.name for p in (reader / "remote").glob("*/*/oci/index.json")] == ["oci"]
    sbom = kiln(["sbom", image.ref], queue_url, reader, s3_store)
    assert sbom.returncode == 0, sbom.stderr
    spdx = next(e for e in image.evidence if e.kind == "sbom-spdx")
    assert "sha256:" + hashlib.sha256(sbom.stdout.encode()).hexdigest() == spdx.digest
    # Without the store the reader has nothing to read: the same command fails, it does not guess.
    alone = subprocess.run([str(KILN), "verify", image.ref], env=env_for(queue_url, tmp_path / "alone"),
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert alone.returncode != 0
    assert os.environ["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
