"""One test per escape class: a step tries, and the host's own state shows it had no effect.

Every probe runs through the real sandbox (:func:`kiln.sandbox.launch.run_in_sandbox`, what build,
validate, ``kiln toe run`` and container test instances use), with network on and off where the
two differ. docs/security.md lists what these tests stand for.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.sandbox.bwrap import CAPABILITIES, Bind, SandboxOptions
from kiln.sandbox.launch import run_in_sandbox
from tests.security.conftest import probe_results, sandboxed

pytestmark = pytest.mark.parametrize("network", [False, True], ids=["net-off", "net-on"])

CAP_BITS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
    "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10,
    "CAP_SYS_CHROOT": 18, "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}  # fmt: skip


@pytest.fixture
def host_sleeper() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _status(text: str, field: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(field + ":"))


def test_dockers_capabilities_no_new_privs_and_seccomp(root: Path, network: bool) -> None:
    done = sandboxed(root, "cat /proc/self/status; echo; cat /proc/1/status", network=network)
    step, init = done.stdout.split("\n\n", 1)
    expected = sum(1 << CAP_BITS[c] for c in CAPABILITIES)
    assert set(CAPABILITIES) == set(CAP_BITS)
    assert int(_status(step, "CapEff"), 16) == expected
    assert int(_status(step, "CapPrm"), 16) == expected
    assert _status(step, "NoNewPrivs") == "1"
    assert _status(step, "Seccomp") == "2"  # filter mode
    # The sandbox's PID 1 (bubblewrap's reaper) has no capabilities and the same filter.
    assert int(_status(init, "CapEff"), 16) == 0 and _status(init, "Seccomp") == "2"


def test_file_handles_cannot_open_host_files(root: Path, network: bool, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("shared\n")
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    done = sandboxed(root, "probe handles /var/cache/shared/file", network=network,
                     binds=(Bind(shared, "/var/cache/shared"),))  # fmt: skip
    results = probe_results(done)
    assert results == {"name_to_handle_at": "errno=EPERM", "open_by_handle_at": "errno=EPERM"}
    assert secret.read_text() == "host only\n"


def test_sysctls_and_sysrq_are_read_only(root: Path, network: bool) -> None:
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    writes = {
        "/proc/sys/kernel/core_pattern": "|/tmp/kiln-pwn %p",  # code execution on the host if writable
        "/proc/sys/kernel/randomize_va_space": "0",
        "/proc/sys/net/ipv4/ip_forward": "1",
        "/proc/sysrq-trigger": "h",
        "/proc/irq/default_smp_affinity": "0",
    }
    present = {path: value for path, value in writes.items() if Path(path).exists()}
    script = "".join(f"echo '{value}' > {path}; " for path, value in present.items()) + "exit 0"
    done = sandboxed(root, script, network=network)
    assert done.stderr.count("Read-only file system") == len(present) >= 4, done.stderr
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before


def test_runc_masked_paths_are_empty(root: Path, network: bool) -> None:
    done = sandboxed(root, "cat /proc/keys /proc/timer_list; ls -A /proc/acpi 2>/dev/null; ls -A /sys",
                     network=network)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "", done.stdout[:300]
    assert Path("/proc/keys").exists()  # the host has it; the sandbox sees nothing


def test_sys_is_empty_and_read_only(root: Path, network: bool) -> None:
    done = sandboxed(root, "mkdir /sys/kernel; echo x > /sys/x", network=network)
    assert done.returncode != 0 and "Read-only file system" in done.stderr
    assert not (root / "sys/kernel").exists() and not (root / "sys/x").exists()


def test_no_address_can_be_added_to_any_interface(root: Path, network: bool) -> None:
    address = f"10.{uuid.uuid4().int % 200 + 10}.77.1"
    done = sandboxed(root, f"probe addr lo {address}; probe addr eth0 {address}; readlink /proc/self/ns/net",
                     network=network)  # fmt: skip
    assert done.stdout.count("add_address errno=EPERM") == 2, done.stdout
    assert done.stdout.splitlines()[-1] != str(
        Path("/proc/self/ns/net").readlink()
    )  # never the host's namespace
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert address not in host


def test_ptrace_and_signals_cannot_reach_host_processes(root: Path, network: bool, host_sleeper: int) -> None:
    done = sandboxed(root, f"probe ptrace {host_sleeper}; kill -9 {host_sleeper}", network=network)
    assert probe_results(done) == {"kill": "errno=ESRCH", "ptrace_attach": "errno=ESRCH"}
    status = Path(f"/proc/{host_sleeper}/status").read_text()
    assert _status(status, "TracerPid") == "0" and _status(status, "State").startswith("S")


def test_device_nodes_cannot_be_opened(root: Path, network: bool) -> None:
    disk = next(p for p in sorted(Path("/sys/dev/block").iterdir()))  # a real block device of the host
    major, minor = disk.name.split(":")
    done = sandboxed(root, f"probe device /tmp/blk {major} {minor}; probe device /root/blk {major} {minor}; "
                           "probe device /dev/blk 1 1", network=network)  # fmt: skip
    # CAP_MKNOD is in Docker's set; every mount is nodev, so the node cannot be opened.
    assert done.stdout.count("open_device errno=EACCES") == 3, done.stdout


def test_namespaces_and_mounts_are_refused(root: Path, network: bool) -> None:
    results = probe_results(sandboxed(root, "probe namespaces", network=network))
    assert results.pop("chroot") == "ok"  # CAP_SYS_CHROOT, as in Docker: a chroot inside the image
    assert results and all(v == "errno=EPERM" for v in results.values()), results
    assert "kiln-escape" not in Path("/proc/self/mountinfo").read_text()


def test_raw_and_vsock_sockets_are_refused(root: Path, network: bool) -> None:
    results = probe_results(sandboxed(root, "probe sockets", network=network))
    assert results == {
        "raw_inet": "errno=EPERM",
        "packet": "errno=EPERM",
        "vsock": "errno=EPERM",
        "tcp": "ok",
    }


def test_kernel_interfaces_are_refused(root: Path, network: bool) -> None:
    results = probe_results(sandboxed(root, "probe kernel", network=network))
    assert len(results) == 10 and set(results.values()) == {"errno=EPERM"}, results
    assert "kiln-escape-key" not in Path("/proc/keys").read_text()


def test_host_environment_stays_out_and_step_environment_stays_out_of_argv(
    root: Path, network: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_HOST_ONLY", "host-value-1234")
    done = sandboxed(root, "tr '\\0' '\\n' < /proc/self/environ; tr '\\0' '\\n' < /proc/1/environ",
                     network=network, env={"STEP_VALUE": "step-value-5678"})  # fmt: skip
    assert "STEP_VALUE=step-value-5678" in done.stdout
    assert "host-value-1234" not in done.stdout
    assert not any("step-value-5678" in arg for arg in done.argv)


def test_proc_1_root_is_the_image(root: Path, network: bool) -> None:
    name = f"kiln-marker-{uuid.uuid4().hex[:8]}"
    done = sandboxed(
        root, f"echo in > /proc/1/root/{name}; cat /proc/1/root/etc/debian_version", network=network
    )
    assert done.returncode == 0
    assert done.stdout.strip() == (root / "etc/debian_version").read_text().strip()
    assert (root / name).read_text() == "in\n" and not Path("/", name).exists()
    (root / name).unlink()


def test_links_in_the_image_do_not_lead_out(root: Path, network: bool, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("shared\n")
    link = root / f"escape-{uuid.uuid4().hex[:8]}"
    link.symlink_to("../../../../../../.." + str(secret))
    # A hard link to a host file bound into the sandbox crosses a mount: EXDEV, never a new name.
    script = f"cat /{link.name}; echo pwned > /{link.name}; ln /var/cache/shared/file /root/hard; exit 0"
    done = sandboxed(root, script, network=network, binds=(Bind(shared, "/var/cache/shared"),))
    assert "host only" not in done.stdout
    assert "Invalid cross-device link" in done.stderr
    assert secret.read_text() == "host only\n" and (shared / "file").stat().st_nlink == 1
    assert not (root / "root/hard").exists()
    link.unlink()
    # What the step wrote through the link landed in the image, where the link really points.
    leaked = root / str(secret).lstrip("/")
    if leaked.exists():
        assert leaked.read_text() == "pwned\n"


def test_network_on_gives_no_way_to_host_loopback_services_or_ports(root: Path, network: bool) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0)
        port = server.getsockname()[1]
        done = sandboxed(root, f"probe connect 127.0.0.1 {port}", network=network)
        assert probe_results(done) == {"connect": "errno=ECONNREFUSED"}
        with pytest.raises(BlockingIOError):
            server.accept()
    # And a port the step listens on is not forwarded to the host.
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    listening = threading.Event()

    def seen(stream: str, line: str) -> None:
        if line == "listen ok":
            listening.set()

    options = SandboxOptions(network=network)
    runner = threading.Thread(
        target=run_in_sandbox, args=(root, ["probe", "listen", str(port), "3"], options),
        kwargs={"on_output": seen, "check": False, "timeout": 30},
    )  # fmt: skip
    runner.start()
    try:
        assert listening.wait(20)
        time.sleep(0.3)  # pasta's automatic forwarding (off here) would have bound the port by now
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
    finally:
        runner.join()
