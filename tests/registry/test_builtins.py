"""Built-in components are registry versions too: a changed built-in document needs a new ``version:``.

The table pins every built-in's version and digest. When a document under kiln/components changes,
this test fails until its ``version:`` is raised (published versions are immutable: a catalog seeded
by an older Kiln holds the old bytes under the old version) and the row below is updated.
"""

from __future__ import annotations

from kiln.recipes.loader import builtin_components
from kiln.registry.components import builtin_documents

PINNED = {
    "hardening/account-files": (
        "1.0.0",
        "sha256:21f897e3c999f3193becee05888c180bfaecfdc3b8e0e525ef81be3325297e6e",
    ),
    "hardening/audit": ("1.0.0", "sha256:0ddc50d5429dde5cde8cbe9796386cb72f4560306e942362b48bf3f700c0a441"),
    "hardening/banner": ("1.0.0", "sha256:825c991bb88b9f7d07f021ffea1fed35a72c4bf50f04cd7526bbf6d16016b894"),
    "hardening/core-dumps": (
        "1.0.0",
        "sha256:062a93409d92a59ab7531326adc1bc846faf48aeb7ec68862d3cd6071c618b7d",
    ),
    "hardening/cron": ("1.0.0", "sha256:64c3608a7c9c053904b20f5ab0baaa40a768274eb3177caaebaafe51122db129"),
    "hardening/filesystem-modules": (
        "1.0.0",
        "sha256:d2305fc9683490aa5cfbd76ee25873d09e06a1e1d738ba77f864f064a1c3bf52",
    ),
    "hardening/logging": ("1.0.0", "sha256:b06420949c8a13a446906bce65fe6d3ce6eb7132ebc2a8ba8b361fdf96b79dc9"),
    "hardening/login-defs": (
        "1.0.0",
        "sha256:e8989e6bd9797be1aa1ea0aceed03b1f96b9c03b7a5b298c25902765fd8592bb",
    ),
    "hardening/remove-packages": (
        "1.0.0",
        "sha256:029cef67a698658c0c0cec50fd7edaaa31d5e7d09435cfae58acda50bbdbd1d4",
    ),
    "hardening/sshd": ("1.0.0", "sha256:9b6ef4f9bce60fde1746b69970371f7b984b2932e129b078e8d1d11f05dfde91"),
    "hardening/sysctl": ("1.0.0", "sha256:b123de14ec2a9d8bba45ab0f771f8b1aff1b9b2b9d8ccd4e8671e28529d6a135"),
    "hardening/system-map": (
        "1.0.0",
        "sha256:e9231de4a620c76ea39b3b276cc9bc6ccc0604067432a731dd36db882f9b28cc",
    ),
    "hardening/time-sync": (
        "1.0.0",
        "sha256:dcfe07a342d81bc45f7305ac665552e6b8801c63089a5f880cb8fd44881ad200",
    ),
    "update-os": ("1.0.0", "sha256:122947f325a3d065cea69db511e326ad8e713290fc278561a3569087871eda94"),
}


def test_every_builtin_is_pinned_at_its_version_and_digest() -> None:
    shipped = {b.name: (b.version, b.digest) for b in builtin_documents()}
    changed = {
        name: shipped.get(name)
        for name in shipped.keys() | PINNED.keys()
        if shipped.get(name) != PINNED.get(name)
    }
    assert changed == {}, "a built-in changed: give it a new `version:` and update PINNED"


def test_builtin_names_are_their_paths() -> None:
    assert sorted(b.name for b in builtin_documents()) == builtin_components()
