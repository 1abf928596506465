"""``oci-archive``: an OCI image layout packed into one plain tar (what ``skopeo oci-archive:`` reads)."""

from __future__ import annotations

from pathlib import Path

from kiln.outputs.archive import Archive, DeterministicTar
from kiln.outputs.layout import LayoutError, open_layout


def write_oci_archive(layout: Path, dest: Path, *, epoch: int | None = None) -> Archive:
    """Pack the OCI layout at ``layout`` into the tar file ``dest``: same blobs, so same digests.

    ``epoch`` (entry mtimes) defaults to the image's ``created`` time, keeping the archive reproducible.
    """
    image = open_layout(layout)  # validates the layout before anything is written
    if epoch is None:
        epoch = image.created_epoch or 0
    blobs = image.layout / "blobs" / "sha256"
    with DeterministicTar(dest, epoch) as tar:
        tar.add_dir("blobs")
        tar.add_dir("blobs/sha256")
        for blob in sorted(blobs.iterdir(), key=lambda p: p.name):
            if not blob.is_file() or blob.is_symlink():
                raise LayoutError(f"{layout}: unexpected entry in blobs/sha256: {blob.name}")
            tar.add_file(f"blobs/sha256/{blob.name}", blob)
        tar.add_file("index.json", image.layout / "index.json")
        tar.add_file("oci-layout", image.layout / "oci-layout")
    assert tar.result is not None
    return tar.result
