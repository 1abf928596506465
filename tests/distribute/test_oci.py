"""OCI registry destination against Debian's docker-registry 2.8 on 127.0.0.1 (no referrers API):
skopeo pushes with the digest preserved, evidence is found through the referrers fallback tag."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.distribute.conftest import Built, kiln, write_targets
from tests.distribute.servers import registry

pytestmark = pytest.mark.e2e

PASSWORD = "reg-pass-7f3c9a"  # tests/fixtures/registry/htpasswd holds its bcrypt hash


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with registry(tmp_path_factory.mktemp("registry")) as host:
        yield host


def test_push_preserves_digest_and_attaches_evidence_as_referrers(
    built: Built, plain_registry: str, tmp_path: Path
) -> None:
    repo = f"{plain_registry}/kiln/tiny"
    config = write_targets(
        tmp_path / "targets.yaml",
        f"  - name: reg\n    type: oci\n    repositories: [{repo}]\n    tls_verify: false\n"
        "    tags: ['{{ version }}', '{{ version }}-{{ build }}', latest]\n",
    )
    result = kiln("distribute", built.ref, "--config", str(config), "--json", home=built.home)
    (outcome,) = json.loads(result.stdout)["targets"]
    entry = outcome["external"]["repositories"][repo]
    assert entry["copied"] is True and entry["referrers_api"] is False

    for tag in ("1.2.3", f"1.2.3-{built.image['build']}", "latest"):
        inspect = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{repo}:{tag}"],
            capture_output=True, check=True,
        )  # fmt: skip
        assert "sha256:" + hashlib.sha256(inspect.stdout).hexdigest() == built.image["digest"]

    # A consumer's plain registry calls: the fallback tag lists the referrers, each names its blob.
    base = f"http://{plain_registry}/v2/kiln/tiny"
    tag = built.image["digest"].replace(":", "-")
    index = httpx.get(
        f"{base}/manifests/{tag}", headers={"Accept": "application/vnd.oci.image.index.v1+json"}
    ).json()
    by_kind = {d["annotations"]["dev.kiln.evidence.kind"]: d for d in index["manifests"]}
    catalog = {e["kind"]: e["digest"] for e in built.image["evidence"]}
    assert set(by_kind) == {"sbom-spdx", "sbom-cyclonedx", "provenance-signed"}
    for kind, descriptor in by_kind.items():
        manifest = httpx.get(f"{base}/manifests/{descriptor['digest']}",
                             headers={"Accept": descriptor["mediaType"]}).json()  # fmt: skip
        assert manifest["subject"]["digest"] == built.image["digest"]
        assert manifest["artifactType"] == descriptor["artifactType"]
        (layer,) = manifest["layers"]
        blob = httpx.get(f"{base}/blobs/{layer['digest']}", follow_redirects=True).content
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"] == catalog[kind]

    # Re-push is a no-op, also at the registry when the catalog's record is bypassed by a new config.
    again = kiln("distribute", built.ref, "--config", str(config), home=built.home)
    assert "already published, nothing changed" in again.stdout
    write_targets(
        config,
        f"  - name: reg\n    type: oci\n    repositories: [{repo}]\n    tls_verify: false\n    tags: [stable]\n",
    )
    changed = kiln("distribute", built.ref, "--config", str(config), "--json", home=built.home)
    (outcome,) = json.loads(changed.stdout)["targets"]
    assert outcome["result"] == "published"
    assert outcome["external"]["repositories"][repo]["copied"] is False
    index2 = httpx.get(
        f"{base}/manifests/{tag}", headers={"Accept": "application/vnd.oci.image.index.v1+json"}
    )
    assert len(index2.json()["manifests"]) == 3  # not duplicated

    gone = kiln("distribute", built.ref, "--config", str(config), "--unpublish", "--json", home=built.home)
    assert json.loads(gone.stdout)["targets"][0]["result"] == "unpublished", gone.stdout
    assert httpx.get(f"{base}/manifests/{built.image['digest']}",
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code == 404  # fmt: skip


def test_credentials_come_from_the_auth_file_and_never_leak(built: Built, tmp_path: Path) -> None:
    with registry(tmp_path / "auth-registry", htpasswd=True) as host:
        repo = f"{host}/kiln/private"
        config = write_targets(
            tmp_path / "targets.yaml",
            f"  - {{name: private, type: oci, repositories: ['{repo}'], tls_verify: false}}\n",
        )
        denied = kiln("distribute", built.ref, "--config", str(config), code=1, home=built.home,
                      env={"REGISTRY_AUTH_FILE": str(tmp_path / "none.json")})  # fmt: skip
        assert "REGISTRY_AUTH_FILE" in denied.stderr

        (tmp_path / "empty.json").write_text('{"auths": {}}')
        nocreds = kiln("distribute", built.ref, "--config", str(config), code=1, home=built.home,
                       env={"REGISTRY_AUTH_FILE": str(tmp_path / "empty.json")})  # fmt: skip
        assert "access denied (no credentials)" in nocreds.stderr
        assert "preflight failed" in nocreds.stderr

        auth = tmp_path / "auth.json"
        token = base64.b64encode(f"kiln:{PASSWORD}".encode()).decode()
        auth.write_text(json.dumps({"auths": {host: {"auth": token}}}))
        ok = kiln("--debug", "distribute", built.ref, "--config", str(config), home=built.home,
                  env={"REGISTRY_AUTH_FILE": str(auth)})  # fmt: skip
        assert PASSWORD not in ok.stdout + ok.stderr and token not in ok.stdout + ok.stderr
    for file in built.home.rglob("*"):  # logs, catalog (+ WAL), records
        if file.is_file():
            data = file.read_bytes()
            assert PASSWORD.encode() not in data and token.encode() not in data, file


def test_promotion_tags_the_channel_in_the_registry(
    built: Built, plain_registry: str, tmp_path: Path
) -> None:
    repos = [f"{plain_registry}/kiln/channels", f"{plain_registry}/mirror/channels"]  # several per target
    config = write_targets(
        tmp_path / "targets.yaml",
        f"  - {{name: reg-channels, type: oci, repositories: {repos}, tls_verify: false, channel_tags: true}}\n",
    )
    kiln("distribute", built.ref, "--config", str(config), home=built.home)
    env = {"KILN_SIGNING_KEY": str(built.key)}  # the built-in policy (dev: image active) suffices
    promoted = kiln("promote", built.ref, "--to", "dev", "--config", str(config), home=built.home, env=env)
    for repo in repos:
        assert f"tagged {repo}:dev" in promoted.stdout
        for tag in ("dev", "1.2.3"):
            raw = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{repo}:{tag}"],
                                 capture_output=True, check=True).stdout  # fmt: skip
            assert "sha256:" + hashlib.sha256(raw).hexdigest() == built.image["digest"]


def test_what_cannot_be_removed_is_listed_as_orphans(built: Built, tmp_path: Path) -> None:
    with registry(tmp_path / "no-delete", delete=False) as host:
        repo = f"{host}/kiln/kept"
        config = write_targets(
            tmp_path / "targets.yaml",
            f"  - {{name: reg-kept, type: oci, repositories: ['{repo}'], tls_verify: false}}\n",
        )
        kiln("distribute", built.ref, "--config", str(config), home=built.home)
        retire = kiln(
            "distribute", built.ref, "--config", str(config), "--unpublish", "--json", code=1, home=built.home
        )
        (outcome,) = json.loads(retire.stdout)["targets"]
        orphans = outcome["external"]["orphans"]
        referrers = outcome["external"]["repositories"][repo]["referrers"]
        assert set(referrers) == {"sbom-spdx", "sbom-cyclonedx", "provenance-signed"}, referrers
        assert outcome["result"] == "failed" and len(orphans) == 5  # 3 referrers + fallback index + image
        assert all(o.startswith(f"{repo}@sha256:") and "HTTP 405" in o for o in orphans)
    history = json.loads(kiln("distributions", built.ref, "--json", home=built.home).stdout)
    assert [r["status"] for r in history if r["target"] == "reg-kept"] == ["succeeded", "failed"]
