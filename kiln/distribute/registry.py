"""A small OCI distribution-spec client (httpx): manifests, blobs, referrers, with credentials from
the containers auth files. skopeo pushes the image itself; this client attaches the referrers (skopeo
1.9 cannot) and reads back what was pushed.

Credentials are looked up where podman/skopeo look (``containers-auth.json(5)``): ``REGISTRY_AUTH_FILE``,
``$XDG_RUNTIME_DIR/containers/auth.json``, ``~/.config/containers/auth.json``, ``~/.docker/config.json``.
They only ever travel in an ``Authorization`` header; errors name the file, never its content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kiln.errors import KilnError

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ACCEPT = ", ".join([MANIFEST, INDEX, "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])  # fmt: skip
CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(KilnError):
    """A registry refused or failed a request."""


def auth_files(environ: Mapping[str, str]) -> list[Path]:
    """Where credentials are looked up, in order (the first file naming the registry wins)."""
    files = []
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(environ["REGISTRY_AUTH_FILE"]))
    if environ.get("XDG_RUNTIME_DIR"):
        files.append(Path(environ["XDG_RUNTIME_DIR"]) / "containers/auth.json")
    home = Path(environ.get("HOME", str(Path.home())))
    files += [home / ".config/containers/auth.json", home / ".docker/config.json"]
    return files


def credentials(host: str, environ: Mapping[str, str]) -> tuple[tuple[str, str] | None, Path | None]:
    """((user, password), the file they came from) for ``host``, or (None, None)."""
    for file in auth_files(environ):
        try:
            auths = json.loads(file.read_text()).get("auths", {})
        except FileNotFoundError:
            continue
        except (OSError, ValueError, AttributeError) as exc:
            raise KilnError(f"{file}: not a readable containers auth file ({type(exc).__name__})") from None
        entry = auths.get(host) or auths.get(f"https://{host}") or auths.get(f"http://{host}")
        if isinstance(entry, dict) and entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                raise KilnError(f"{file}: the entry for {host} is not base64 user:password") from None
            return (user, password), file
    return None, None


@dataclass(frozen=True)
class Pushed:
    digest: str
    subject_supported: bool  # the registry answered OCI-Subject: it has the referrers API


class Registry:
    """One repository (``host[:port]/path``) of one registry."""

    def __init__(self, repository: str, environ: Mapping[str, str], *, tls_verify: bool = True) -> None:
        self.host, _, self.name = repository.partition("/")
        scheme = "https" if tls_verify else "http"
        self.base = f"{scheme}://{self.host}/v2"
        self.creds, self.auth_file = credentials(self.host, environ)
        self.client = httpx.Client(verify=tls_verify, timeout=60.0)
        self._token: str | None = None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ----------------------------------------------------------------------------

    def _authorize(self, challenge: str) -> None:
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if self.creds is None:
                raise self._denied()
            self._token = "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
            return
        fields = dict(CHALLENGE.findall(params))
        query = {k: v for k, v in fields.items() if k in ("service", "scope")}
        query["scope"] = f"repository:{self.name}:pull,push,delete"
        response = self.client.get(fields.get("realm", ""), params=query, auth=self.creds)
        if response.status_code != 200:
            raise self._denied()
        body = response.json()
        self._token = "Bearer " + str(body.get("token") or body.get("access_token"))

    def _denied(self) -> RegistryError:
        where = f"the credentials for {self.host} in {self.auth_file}" if self.auth_file else "no credentials"
        looked = "REGISTRY_AUTH_FILE, containers auth.json, ~/.docker/config.json"
        return RegistryError(f"{self.host}/{self.name}: access denied ({where})",
                             hint=f"log in with: skopeo login {self.host} (looked in {looked})")  # fmt: skip

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = (
            path
            if path.startswith("http")
            else f"{self.base}/{self.name}/{path}"
            if path
            else f"{self.base}/"
        )
        for _ in range(2):
            headers = dict(kwargs.pop("headers", {}) or {})
            if self._token:
                headers["Authorization"] = self._token
            try:
                response = self.client.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as exc:
                raise RegistryError(
                    f"cannot reach the registry {self.host}: {type(exc).__name__}: {exc}",
                    hint="check the address, the network and tls_verify",
                ) from None
            kwargs["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
            if response.status_code == 401 and "www-authenticate" in response.headers:
                self._authorize(response.headers["www-authenticate"])
                continue
            return response
        raise self._denied()

    def ping(self) -> None:
        """The registry answers and accepts our credentials (or none are needed)."""
        response = self.request("GET", "")
        if response.status_code == 401:
            raise self._denied()
        if response.status_code >= 400:
            raise RegistryError(f"{self.host}: /v2/ answered {response.status_code}")

    # --- manifests and blobs ------------------------------------------------------------------

    def manifest(self, reference: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of a tag or digest, or None when absent."""
        response = self.request("GET", f"manifests/{reference}", headers={"Accept": ACCEPT})
        if response.status_code == 404:
            return None
        self._check(response, f"get manifest {reference}")
        return response.content, response.headers.get("content-type", "")

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> Pushed:
        response = self.request(
            "PUT", f"manifests/{reference}", content=data, headers={"Content-Type": media_type}
        )
        self._check(response, f"put manifest {reference}")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return Pushed(digest, "oci-subject" in response.headers)

    def delete_manifest(self, digest: str) -> bool:
        """True if deleted or already gone."""
        response = self.request("DELETE", f"manifests/{digest}")
        if response.status_code in (202, 200, 404):
            return True
        self._check(response, f"delete manifest {digest}")
        return False

    def has_blob(self, digest: str) -> bool:
        return self.request("HEAD", f"blobs/{digest}").status_code == 200

    def push_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has_blob(digest):
            return digest
        start = self.request("POST", "blobs/uploads/")
        self._check(start, "start a blob upload")
        location = start.headers["location"]
        if location.startswith("/"):
            location = self.base.removesuffix("/v2") + location
        sep = "&" if "?" in location else "?"
        done = self.request("PUT", f"{location}{sep}digest={digest}", content=data,
                            headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        self._check(done, f"upload blob {digest}")
        return digest

    def referrers(self, digest: str) -> dict[str, Any] | None:
        """The referrers API's index for ``digest``; None if the registry has no referrers API."""
        response = self.request("GET", f"referrers/{digest}", headers={"Accept": INDEX})
        if response.status_code == 200 and response.headers.get("content-type", "").startswith(INDEX):
            data: dict[str, Any] = response.json()
            return data
        return None

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code >= 400:
            detail = response.text[:300].strip()
            raise RegistryError(f"{self.host}/{self.name}: {what}: HTTP {response.status_code} {detail}")


def fallback_tag(digest: str) -> str:
    """The referrers tag schema: ``sha256-<hex>`` names the index of ``digest``'s referrers."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}"
