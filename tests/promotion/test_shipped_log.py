"""The ``tests_passed`` rule on a machine that did not run the build: the worker's log path is not
there, so the rule reads the log the worker shipped to the shared store (a local-path store here),
mirrored into this machine's data directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from kiln.catalog import Catalog, NewImage
from kiln.objectstore import open_object_store
from kiln.promotion.policy import load_policy
from kiln.promotion.rules import RuleResult, evaluate
from kiln.shippedlogs import LogShipper, end_key
from kiln.store import Store


def rule_of(results: list[RuleResult]) -> RuleResult:
    return next(r for r in results if r.rule == "tests_passed")


POLICY = "version: 1\nchannels: [dev]\npolicies:\n  dev:\n    tests_passed: true\n"
TESTED = {
    "kind": "end",
    "scope": "test",
    "status": "success",
    "message": "test on a fresh container instance",
}


def test_tests_passed_reads_the_shipped_log_when_the_workers_path_is_elsewhere(tmp_path: Path) -> None:
    shared = str(tmp_path / "shared")
    worker = Store.open_at(tmp_path / "worker", tmp_path / "worker/cache", shared=shared)
    reader = Store.open_at(tmp_path / "reader", tmp_path / "reader/cache", shared=shared)
    (tmp_path / "policy.yaml").write_text(POLICY)
    policy = load_policy(tmp_path / "policy.yaml")
    log = worker.home / "logs" / "web.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as catalog:  # the one catalog both use
        build = catalog.start_build(recipe_name="web", recipe_version="1.0.0", recipe_path="/r.yaml",
                                    log_path=str(log))  # fmt: skip
        log.write_text(json.dumps({"kind": "start", "scope": "build"}) + "\n" + json.dumps(TESTED) + "\n")
        shipper = LogShipper(open_object_store(shared, worker.home), build, 1)
        shipper.ship(log)
        open_object_store(shared, worker.home).put_named(end_key(build, 1), b"{}")
        image = catalog.finish_build(build, NewImage(name="web", version="1.0.0", digest="sha256:" + "a" * 64,
                                                     created=datetime.now(UTC), parent="debian:bookworm"))  # fmt: skip
        now = datetime.now(UTC)
        on_worker = rule_of(evaluate(catalog, image, "dev", policy, now, worker))
        assert on_worker.passed and on_worker.detail == "test on a fresh container instance"
        log.unlink()  # the reader's machine: the worker's path does not exist there
        without = rule_of(evaluate(catalog, image, "dev", policy, now))
        assert not without.passed and "no build log" in without.detail
        on_reader = rule_of(evaluate(catalog, image, "dev", policy, now, reader))
        assert on_reader.passed, on_reader.detail
        assert on_reader.detail == "test on a fresh container instance"
        assert (reader.home / "remote" / "logs" / f"{build}-1.jsonl").is_file()
