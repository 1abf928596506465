"""VM test fixtures: the same bootable root and disks as tests/outputs (cached across sessions)."""

from tests.outputs.conftest import hybrid_disk, uefi_disk, vm_root

__all__ = ["hybrid_disk", "uefi_disk", "vm_root"]
