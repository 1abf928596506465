"""OCI registry destination: skopeo pushes the image's OCI layout (``--preserve-digests``: the
registry's digest is the catalog's), then every tag points at that manifest and the evidence
(SBOMs, VEX, provenance) is attached as OCI 1.1 referrers: one artifact manifest per file whose
``subject`` is the image manifest. Registries without the referrers API (docker-registry 2.8) get the
referrers tag schema: an image index under the tag ``sha256-<hex of the image digest>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kiln.distribute.base import Destination, DistributionError, External, PreflightFailed
from kiln.distribute.files import PublishedFile
from kiln.distribute.registry import EMPTY, EMPTY_DIGEST, INDEX, MANIFEST, Registry, fallback_tag
from kiln.distribute.spec import OciTarget
from kiln.errors import KilnError
from kiln.sandbox.run import require_tool, run

REFERRER_KINDS = (
    "sbom-spdx",
    "sbom-cyclonedx",
    "vex",
    "vulnerability-report",
    "provenance-signed",
    "provenance",
)
PUSH_TIMEOUT = 3600


def artifact_manifest(file: PublishedFile, data_size: int, subject: dict[str, Any], created: str) -> bytes:
    """The OCI 1.1 artifact manifest attaching ``file`` to ``subject`` (deterministic bytes)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": file.media_type,
        "config": {"mediaType": EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": [
            {
                "mediaType": file.media_type,
                "digest": file.digest,
                "size": data_size,
                "annotations": {"org.opencontainers.image.title": Path(file.name).name},
            }
        ],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": created, "dev.kiln.evidence.kind": file.kind},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Oci(Destination):
    kind = "oci"
    Spec = OciTarget
    spec: OciTarget

    def _layout(self) -> tuple[Path, str | None, bytes]:
        """(layout directory, its reference name for the image, the image manifest's bytes)."""
        oci = next((a for a in self.ctx.image.artifacts if a.kind == "oci"), None)
        if oci is None:
            raise PreflightFailed(f"target {self.spec.name}: {self.ctx.image.ref} has no oci output to push",
                                  hint="add `oci` to the recipe's outputs")  # fmt: skip
        layout = Path(oci.path)
        digest = self.ctx.image.digest
        try:
            index = json.loads((layout / "index.json").read_text())
            data = (layout / "blobs/sha256" / digest.removeprefix("sha256:")).read_bytes()
        except (OSError, ValueError) as exc:
            raise KilnError(f"{layout}: cannot read the OCI layout: {exc}") from None
        ref = next(
            (m.get("annotations", {}).get("org.opencontainers.image.ref.name")
             for m in index.get("manifests", []) if m.get("digest") == digest),
            None,
        )  # fmt: skip
        return layout, ref, data

    def _registry(self, repository: str) -> Registry:
        return Registry(repository, self.ctx.environ, tls_verify=self.spec.tls_verify)

    def preflight(self) -> None:
        require_tool("skopeo")
        if not self.ctx.planned:
            self._layout()
        named = self.ctx.environ.get("REGISTRY_AUTH_FILE")
        if named and not Path(named).is_file():
            raise PreflightFailed(
                f"target {self.spec.name}: REGISTRY_AUTH_FILE names {named}, which does not exist"
            )
        for repository in self.spec.repositories:
            try:
                with self._registry(repository) as registry:
                    registry.ping()
            except KilnError as exc:
                raise PreflightFailed(f"target {self.spec.name}: {exc.message}", hint=exc.hint) from None

    def publish(self) -> External:
        layout, ref, manifest = self._layout()
        digest = self.ctx.image.digest
        tags = list(dict.fromkeys(self.ctx.render(t) for t in self.spec.tags))
        out: dict[str, Any] = {}
        for repository in self.spec.repositories:
            with self._registry(repository) as registry:
                copied = False
                if registry.manifest(digest) is None:
                    self._skopeo(layout, ref, repository, tags[0], registry)
                    copied = True
                for tag in tags:
                    current = registry.manifest(tag)
                    if current is None or current[0] != manifest:
                        registry.put_manifest(tag, manifest, MANIFEST)
                for tag in tags:
                    current = registry.manifest(tag)
                    if current is None or current[0] != manifest:
                        raise DistributionError(f"{repository}:{tag} does not hold {digest} after the push")
                entry: dict[str, Any] = {"digest": digest, "tags": tags, "copied": copied}
                if self.spec.referrers:
                    entry.update(self._attach(registry, {"mediaType": MANIFEST, "digest": digest,
                                                         "size": len(manifest)}))  # fmt: skip
                out[repository] = entry
                self.ctx.log(f"{repository}@{digest}: {', '.join(tags)}")
        return {"repositories": out}

    def _skopeo(self, layout: Path, ref: str | None, repository: str, tag: str, registry: Registry) -> None:
        argv = [require_tool("skopeo"), "copy", "--preserve-digests", "--retry-times", "2"]
        if not self.spec.tls_verify:
            argv.append("--dest-tls-verify=false")
        if registry.auth_file is not None:
            argv += ["--dest-authfile", str(registry.auth_file)]  # a path; the secret stays in the file
        source = f"oci:{layout}:{ref}" if ref else f"oci:{layout}"
        run([*argv, source, f"docker://{repository}:{tag}"], env=dict(self.ctx.environ), timeout=PUSH_TIMEOUT)

    def _attach(self, registry: Registry, subject: dict[str, Any]) -> dict[str, Any]:
        created = self.ctx.image.created.isoformat()
        registry.push_blob(b"{}")
        referrers: dict[str, str] = {}
        descriptors: list[dict[str, Any]] = []
        api = False
        for file in self.ctx.files():
            if file.role != "evidence" or file.kind not in REFERRER_KINDS:
                continue
            data = file.source.read_bytes()
            if registry.push_blob(data) != file.digest:
                raise DistributionError(
                    f"{file.source} changed since the build (its digest is not {file.digest})"
                )
            body = artifact_manifest(file, len(data), subject, created)
            pushed = registry.put_manifest(_digest(body), body, MANIFEST)
            api = api or pushed.subject_supported
            referrers[file.kind] = pushed.digest
            descriptors.append({"mediaType": MANIFEST, "digest": pushed.digest, "size": len(body),
                                "artifactType": file.media_type,
                                "annotations": {"dev.kiln.evidence.kind": file.kind}})  # fmt: skip
        result: dict[str, Any] = {"referrers": referrers, "referrers_api": api}
        if not api:
            tag = fallback_tag(subject["digest"])
            current = registry.manifest(tag)
            listed = json.loads(current[0]).get("manifests", []) if current else []
            known = {d.get("digest") for d in listed}
            merged = listed + [d for d in descriptors if d["digest"] not in known]
            index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": merged}
            body = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
            if current is None or current[0] != body:
                registry.put_manifest(tag, body, INDEX)
            result["fallback_tag"] = tag
            result["fallback_index"] = _digest(body)
        return result

    def tag(self, external: External, tag: str) -> list[str]:
        """Point ``tag`` (a channel name) at the published image in every repository; returns them."""
        done = []
        for repository, entry in external.get("repositories", {}).items():
            with self._registry(repository) as registry:
                found = registry.manifest(entry["digest"])
                if found is None:
                    raise DistributionError(
                        f"{repository}@{entry['digest']} is gone; distribute the image again"
                    )
                registry.put_manifest(tag, found[0], found[1] or MANIFEST)
            done.append(f"{repository}:{tag}")
        return done

    def unpublish(self, external: External) -> list[str]:
        orphans: list[str] = []
        for repository, entry in external.get("repositories", {}).items():
            digests = [*entry.get("referrers", {}).values()]
            if entry.get("fallback_index"):
                digests.append(entry["fallback_index"])
            digests.append(entry["digest"])
            try:
                with self._registry(repository) as registry:
                    for digest in digests:
                        try:
                            registry.delete_manifest(digest)
                        except KilnError as exc:
                            orphans.append(f"{repository}@{digest}: {exc.message}")
            except KilnError as exc:
                orphans.append(f"{repository}: {exc.message}")
        return orphans


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()
