"""The live progress display, captured on a terminal of a fixed width and driven by real events: a
recorded build log (VM boot on the console), recorded mmdebstrap output, and a real build."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from kiln.build import run_build
from kiln.catalog import Catalog
from kiln.cli.estimate import Estimate, last_build, recipe_estimate, stage_durations
from kiln.cli.progress import ProgressMonitor, progress_monitor
from kiln.models import BuildRequest, RecipeSource
from kiln.monitor import ConsoleMonitor, Event, ListMonitor
from kiln.settings import Settings
from kiln.store import Store
from tests.catalog.conftest import new_image
from tests.documents import create_file_component

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures/progress"
VM_LOG = FIXTURES / "debian-vm-build.jsonl"
MMDEBSTRAP = FIXTURES / "mmdebstrap-bookworm-minbase.txt"
WIDTH = 90
FIELDS = set(Event.__dataclass_fields__)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def terminal(width: int = WIDTH) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def snapshot(monitor: ProgressMonitor) -> str:
    out = terminal()
    out.print(monitor.render())
    text = out.file.getvalue()  # type: ignore[attr-defined]
    assert all(len(line) <= WIDTH for line in text.splitlines()), text
    return str(text)


def recorded(log: Path) -> Iterator[tuple[float, Event]]:
    for line in log.read_text().splitlines():
        record = json.loads(line)
        yield record["time"], Event(**{k: v for k, v in record.items() if k in FIELDS})


def test_a_vm_build_replayed_shows_stages_boot_stages_and_the_estimate() -> None:
    total, stages = stage_durations(VM_LOG)
    assert total == pytest.approx(156.8, abs=0.1)
    clock = Clock()
    monitor = ProgressMonitor(terminal(), estimate=Estimate("b1", total, stages), clock=clock, live=False)
    for when, event in recorded(VM_LOG):
        clock.now = when
        monitor.emit(event)
        if event.scope == "vm" and "Reached target sysinit.target" in event.message:
            during = snapshot(monitor)
    lines = during.splitlines()
    assert lines[0].split()[:3] == ["✓", "parent", "debian:bookworm"] and "cached" in lines[0]
    nginx = next(line for line in lines if "component nginx" in line)
    assert "success" in nginx and "10.0s" in nginx and "last 10.0s" in nginx
    running = next(line for line in lines if "test on a fresh VM" in line)
    assert running.startswith("▸") and "running" in running and "last 98.6s" in running
    assert "test phase on a VM instance (uefi, tcg)" in during
    boot = next(line for line in lines if "boot:" in line)
    assert (
        boot.strip() == "boot: firmware > loader > kernel > initramfs > systemd > services · sysinit.target"
    )
    # at that console line the recorded build had run 2:14 of the 2:37 it took in all
    assert lines[-1] == "build debian-vm 1.0.0  2:14 elapsed  last build 2:37  about 0:23 left"
    after = snapshot(monitor).splitlines()
    assert "2:37 in total" in after[-1] and "left" not in after[-1]
    assert [line.split()[0] for line in after[:-1]] == ["✓"] * (len(after) - 1)
    assert "record image version" in after[-2]


def test_mmdebstrap_output_counts_packages_and_download_bytes() -> None:
    clock = Clock()
    monitor = ProgressMonitor(terminal(), clock=clock, live=False)
    monitor.emit(Event("start", "build", "build tiny 1.0.0"))
    monitor.emit(Event("start", "parent", "parent debian:bookworm"))
    views = {}
    for number, line in enumerate(MMDEBSTRAP.read_text().splitlines(), 1):
        monitor.emit(Event("output", "parent", line.rstrip("\n")))
        if number in (100, 500, 900):
            views[number] = snapshot(monitor)
    # line 100: the essential set (69 packages) is downloading, 21.3 MB of 29.7 MB so far
    assert "download" in views[100] and "20.3 MiB of 28.3 MiB" in views[100]
    assert "0/69 unpacked, 0/69 configured" in views[100]
    assert "mmdebstrap: downloading packages with apt" in views[100]
    assert "mmdebstrap: installing essential packages" in views[500]
    assert "download" not in views[500]  # done: no download bar
    # line 900: the second apt run announced 30 more packages and is downloading them
    assert "69/99 unpacked, 69/99 configured" in views[900]
    assert "mmdebstrap: installing remaining packages inside the chroot" in views[900]
    done = snapshot(monitor)
    assert "99/99 unpacked, 99/99 configured" in done
    monitor.emit(Event("end", "parent", "parent debian:bookworm", status="success", duration=80.0))
    assert "packages" not in snapshot(monitor)


def test_layer_and_conversion_bytes_and_warnings_on_a_live_terminal() -> None:
    console = terminal()
    monitor = ProgressMonitor(console)  # a real Live display on a forced terminal
    monitor.emit(Event("start", "build", "build web 1.0.0"))
    monitor.emit(Event("start", "component", "component nginx"))
    monitor.progress("layer", "layer debian:bookworm")(64 << 20, 190 << 20)
    assert "layer debian:bookworm" in snapshot(monitor) and "64.0 MiB of 190.0 MiB" in snapshot(monitor)
    monitor.warning("something to know")
    monitor.emit(Event("end", "component", "component nginx", status="success", duration=1.5))
    monitor.progress("layer", "layer debian:bookworm")(190 << 20, 190 << 20)
    assert "layer debian:bookworm" not in snapshot(monitor)  # written: gone
    monitor.emit(Event("start", "outputs", "convert to qcow2"))
    monitor.progress("output", "convert to qcow2")(300 << 20, 1200 << 20)
    assert "convert to qcow2 " in snapshot(monitor) and "300.0 MiB of 1.2 GiB" in snapshot(monitor)
    monitor.emit(Event("end", "outputs", "convert to qcow2", status="success", duration=3.0))
    monitor.emit(Event("start", "catalog", "record image version"))
    assert "300.0 MiB" not in snapshot(monitor)  # a conversion's bar ends with its stage
    monitor.emit(Event("end", "catalog", "record image version", status="success", duration=0.1))
    monitor.emit(Event("end", "build", "build web 1.0.0", status="success", duration=2.0))
    monitor.close()
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "warning: something to know" in text
    assert "✓ component nginx" in text and "build web 1.0.0  0:02 in total" in text


def test_plain_lines_when_not_a_terminal_or_with_json() -> None:
    plain = Console(file=io.StringIO(), width=WIDTH)
    assert type(progress_monitor(plain, verbose=False, json_output=False)) is ConsoleMonitor
    assert type(progress_monitor(terminal(), verbose=False, json_output=True)) is ConsoleMonitor
    live = progress_monitor(terminal(), verbose=False, json_output=False)
    assert isinstance(live, ProgressMonitor)
    live.close()


def test_the_estimate_is_the_last_succeeded_build_of_the_recipe(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home", Settings())
    assert last_build(store, "debian-vm", "1.0.0") is None  # a fresh data dir: no catalog yet
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "start", "scope": "build", "message": "build debian-vm 1.0.0"}\n')
    with Catalog.open(store.database_url) as catalog:
        done = catalog.start_build(recipe_name="debian-vm", recipe_version="1.0.0", recipe_path="r.yaml",
                                   log_path=str(VM_LOG))  # fmt: skip
        catalog.finish_build(done, new_image("debian-vm", "1.0.0"))
        failed = catalog.start_build(recipe_name="debian-vm", recipe_version="1.0.0", recipe_path="r.yaml",
                                     log_path=str(broken))  # fmt: skip
        catalog.fail_build(failed, "boom")  # newer, but failed: not an estimate
    estimate = last_build(store, "debian-vm", "1.0.0")
    assert estimate is not None and estimate.build_id == done
    assert estimate.total == pytest.approx(156.8, abs=0.1)
    assert estimate.stages["component nginx"] == pytest.approx(10.0, abs=0.05)
    assert last_build(store, "debian-web", "1.0.0") is None


@pytest.mark.e2e
def test_a_real_rebuild_draws_its_stages_with_the_first_builds_times(tmp_path: Path) -> None:
    """Two real builds of a small recipe (cached parent); the second is drawn with the estimate."""
    (tmp_path / "motd.yaml").write_text(COMPONENT)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    request = BuildRequest(recipe=RecipeSource.read(recipe), data_dir=tmp_path / "home", requester="tests")
    first = run_build(request, monitor=ListMonitor(), settings=Settings())
    estimate = recipe_estimate(request, Settings())
    assert estimate is not None and estimate.build_id == first.build_id
    console = terminal()
    display = ProgressMonitor(console, estimate=estimate)
    try:
        run_build(request, monitor=display, settings=Settings())
    finally:
        display.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())  # type: ignore[attr-defined]
    final = text[text.rindex("parent debian:bookworm") - 2 :].strip().splitlines()  # the last drawing
    assert final[0].startswith("✓ parent debian:bookworm") and "cached" in final[0]
    assert any(line.startswith("✓ component motd") and "cached" in line for line in final)
    assert any(line.startswith("✓ OCI image layout") and "last " in line for line in final)
    assert final[-1].startswith("build progress-demo 1.0.0")
    assert f"last build {int(estimate.total) // 60}:{round(estimate.total) % 60:02d}" in final[-1]
    assert "in total" in final[-1]


COMPONENT = create_file_component("progress display test")
RECIPE = """\
name: progress-demo
version: 1.0.0
parent: debian:bookworm
components:
  - path: motd.yaml
outputs: [{type: oci}]
"""
