"""What a pipeline run does around its build, over a real catalog and real directory targets: the
distribution preflight stops a run before its build starts; after the build the image is published
to the pipeline's targets as recorded distribution jobs (a failure fails the run and keeps the image,
``--retry-failed`` then publishes it); the pipeline's lifecycle policy changes its own image only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from kiln.catalog import distributions as jobs
from kiln.distribute.config import load_distribution
from kiln.distribute.run import distribute
from kiln.errors import ValidationFailed
from kiln.pipelines.daemon import Daemon
from kiln.pipelines.release import Release
from kiln.settings import Settings
from kiln.store import Store
from tests.distribute.servers import moto
from tests.pipelines.conftest import World

TARGET = "distribution:\n  - name: out\n    type: directory\n    path: {path}\n"


def released(world: World, name: str, body: str, target: str = "published") -> Path:
    """Apply pipeline ``name`` whose recipe has one directory target ``out`` at ``target``."""
    path = world.pipeline(name, body)
    with open(world.folder / f"{name}.recipe.yaml", "a") as recipe:
        recipe.write(TARGET.format(path=target))
    world.apply(path)
    return path


def daemon(world: World, environ: dict[str, str] | None = None) -> Daemon:
    worker = world.daemon()
    store = Store.open_at(world.folder / "home", world.folder / "cache")
    worker.release = Release(store, world.catalog, Settings(), environ or {})
    return worker


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint); its URL."""
    with moto(tmp_path_factory.mktemp("moto")) as url:
        yield url


def settle(worker: Daemon) -> None:
    """Let the releases the daemon started in the background end, and record them."""
    assert worker.releases.wait(60)
    worker.tick()


def run_once(world: World, worker: Daemon, name: str, key: str) -> None:
    world.store.enqueue(name, "manual", "test", f"manual:{key}", world.clock())
    worker.tick()
    world.runner.complete()
    worker.tick()
    settle(worker)


def test_a_failing_preflight_fails_the_run_before_its_build_starts(world: World) -> None:
    (world.folder / "blocker").write_text("a file where the target's folder would be")
    released(world, "web", "distribution: [out]\n", target="blocker/out")
    worker = daemon(world)
    world.store.enqueue("web", "manual", "test", "manual:1", world.clock())
    worker.tick()
    [run] = world.store.runs("web")
    assert world.runner.started == [] and worker.running == {}
    assert run.status == "failed" and run.build_id is None
    assert run.reason is not None and "preflight failed, do not start the build" in run.reason
    assert f"out: target out: cannot write to {world.folder / 'blocker'}" in run.reason


def test_a_successful_build_is_distributed_and_the_run_shows_it(world: World) -> None:
    released(world, "web", "distribution: [out]\n")
    worker = daemon(world)
    run_once(world, worker, "web", "1")
    [run] = world.store.runs("web")
    image = world.catalog.get_build(run.build_id or "").image
    assert run.status == "succeeded" and image is not None
    assert run.reason == "distributed out (directory) published"
    manifest = json.loads((world.folder / "published/web/1.0.0-1/manifest.json").read_text())
    assert manifest["image"]["digest"] == world.catalog.get_image(image).digest
    [job] = jobs.history(world.catalog, image)
    assert (job.target, job.status, job.requester) == ("out", "succeeded", f"pipeline web run {run.id}")


def test_a_failed_distribution_fails_the_run_keeps_the_image_and_retries(world: World) -> None:
    released(world, "web", "distribution: [out]\n")
    worker = daemon(world)
    world.store.enqueue("web", "manual", "test", "manual:1", world.clock())
    worker.tick()  # the preflight passed: the build runs
    (world.folder / "published").mkdir()
    (world.folder / "published/web").write_text("a file where the image's folder goes")
    world.runner.complete()
    worker.tick()
    settle(worker)
    [run] = world.store.runs("web")
    assert run.status == "failed" and worker.failed == 1
    image = world.catalog.get_build(run.build_id or "").image
    assert image == "web@1.0.0/1" and world.catalog.get_image(image).state == "active"
    assert run.reason is not None
    assert run.reason.startswith("distribution failed: distributed out (directory) failed: FileExistsError")
    assert run.reason.endswith(
        "the image web@1.0.0/1 is kept; retry with: kiln distribute web@1.0.0/1 --retry-failed"
    )
    [attempt] = jobs.history(world.catalog, image)
    assert attempt.status == "failed" and attempt.requester == f"pipeline web run {run.id}"
    (world.folder / "published/web").unlink()
    recipe = world.folder / "web.recipe.yaml"
    [again] = distribute(world.catalog, image, load_distribution(recipe, recipe), settings=Settings(),
                         environ={}, retry_failed=True)  # fmt: skip
    assert again.result == "published" and (world.folder / "published/web/1.0.0-1/SHA256SUMS").is_file()


def test_the_lifecycle_policy_changes_only_the_pipelines_own_image(world: World) -> None:
    (world.folder / "keep-one.yaml").write_text(
        "version: 1\nrules:\n  - images: ['*']\n    keep_newest: 1\n    deprecate_after_days: 0\n"
    )
    world.apply(world.pipeline("other"))
    released(world, "web", "lifecycle: keep-one.yaml\n")
    worker = daemon(world)
    world.clock.now = datetime.now(UTC) + timedelta(days=1)  # after the images are recorded
    for key in ("1", "2"):
        run_once(world, worker, "other", key)
        run_once(world, worker, "web", key)
    last = world.store.runs("web")[0]
    assert last.status == "succeeded"
    assert last.reason == "lifecycle policy keep-one.yaml: web@1.0.0/1 active -> deprecated"
    assert world.catalog.get_image("web@1.0.0/1").state == "deprecated"
    assert world.catalog.get_image("other@1.0.0/1").state == "active"  # another pipeline's image


def test_a_lifecycle_policy_gone_after_apply_fails_the_run_after_distribution(world: World) -> None:
    (world.folder / "keep.yaml").write_text("version: 1\nrules:\n  - deprecate_after_days: 30\n")
    released(world, "web", "distribution: [out]\nlifecycle: keep.yaml\n")
    (world.folder / "keep.yaml").unlink()
    worker = daemon(world)
    run_once(world, worker, "web", "1")
    [run] = world.store.runs("web")
    assert run.status == "failed" and run.reason is not None
    assert run.reason.startswith("distributed out (directory) published; lifecycle policy keep.yaml: ")
    assert (world.folder / "published/web/1.0.0-1/manifest.json").is_file()


def test_apply_refuses_a_missing_or_invalid_lifecycle_policy(world: World) -> None:
    path = world.pipeline("web", "lifecycle: nowhere.yaml\n")
    with pytest.raises(ValidationFailed) as missing:
        world.apply(path)
    [issue] = missing.value.issues
    assert issue.file == str(path) and issue.line == 3 and "nowhere.yaml" in issue.message
    (world.folder / "bad.yaml").write_text("version: 1\nrules:\n  - keep_newest: 2\n")
    path.write_text(path.read_text().replace("nowhere.yaml", "bad.yaml"))
    with pytest.raises(ValidationFailed) as invalid:
        world.apply(path)
    [issue] = invalid.value.issues
    assert issue.file == str(world.folder / "bad.yaml") and issue.line == 3
    assert world.store.pipelines() == []


AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAKILNTEST",
    "AWS_SECRET_ACCESS_KEY": "moto-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def test_a_missing_bucket_stops_the_run_until_it_exists(world: World, s3: str) -> None:
    bucket = f"images-{world.folder.parent.name[-8:].lower().replace('_', '-')}"
    path = world.pipeline("web", "distribution: [bucket]\n")
    with open(world.folder / "web.recipe.yaml", "a") as recipe:
        recipe.write(
            f"distribution:\n  - {{name: bucket, type: s3, bucket: {bucket}, endpoint_url: '{s3}'}}\n"
        )
    world.apply(path)
    worker = daemon(world, AWS)
    world.store.enqueue("web", "manual", "test", "manual:1", world.clock())
    worker.tick()
    [refused] = world.store.runs("web")
    assert refused.status == "failed" and world.runner.started == []
    assert (
        refused.reason is not None
        and f"bucket: target bucket: bucket {bucket} does not exist" in refused.reason
    )
    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
    client.create_bucket(Bucket=bucket)
    run_once(world, worker, "web", "2")
    ran = world.store.runs("web")[0]
    assert ran.status == "succeeded" and ran.reason == "distributed bucket (s3) published"
    manifest = json.loads(client.get_object(Bucket=bucket, Key="web/1.0.0-1/manifest.json")["Body"].read())
    assert manifest["image"]["ref"] == "web@1.0.0/1"
