"""One parser per fact, on recorded output: the deploy (pyinfra) and verify (testinfra) both
read a host through these classes (dlws.facts.readers.pyinfra_reader / testinfra_reader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlws.facts.batch import run_fact
from dlws.facts.gpu import (
    NvidiaDevCharLinks,
    NvidiaDriverVersion,
    NvidiaPackages,
    NvidiaPciDevices,
    NvSwitchCount,
    missing_dev_char_links,
)
from dlws.facts.python import VenvPackages
from dlws.facts.readers import host_facts
from dlws.facts.system import (
    Container,
    Display,
    OsRelease,
    SecureBoot,
    SubordinateIds,
    display_from,
)
from tests.fake_hosts import fixture_lines, transcript_reader

READINGS = Path(__file__).parents[1] / "fixtures" / "readings"


@pytest.mark.parametrize(("case", "version"), [
    # The open module's line has "for x86_64" between "Kernel Module" and the version: the
    # deploy's sed used to read nothing there and fall back to dpkg.
    ("open-580", "580.95.05"),
    ("proprietary-535", "535.216.01"),
])
def test_driver_version_reads_both_module_lines(case, version):
    proc = (READINGS / f"proc-driver-nvidia-version-{case}.txt").read_text().splitlines()
    # The module in use wins over an installed user space of another version (pending reboot).
    assert NvidiaDriverVersion().process([*proc, "590.48.01-0ubuntu1"]) == version


@pytest.mark.parametrize(("lines", "version"), [
    (["580.95.05-0ubuntu0.24.04.2"], "580.95.05"),  # nvidia-utils-580, no module loaded
    (["1:550.163.01-2"], "550.163.01"),  # Debian's nvidia-smi, with an epoch
    ([""], None),
])
def test_driver_version_falls_back_to_the_installed_package(lines, version):
    assert NvidiaDriverVersion().process(lines) == version


def test_os_release():
    lines = fixture_lines("os-release", "ubuntu-24.04")
    assert OsRelease().process(lines) == {"id": "ubuntu", "version_id": "24.04",
                                            "codename": "noble"}


def test_pci_devices_and_nvswitches():
    lines = fixture_lines("lspci", "h100x8.txt")
    devices = NvidiaPciDevices().process(lines)
    assert len(devices) == 8 and {d["device_id"] for d in devices} == {"10de:2330"}
    assert NvSwitchCount().process(lines) == 4
    assert NvSwitchCount().process(fixture_lines("lspci", "rtx-4090.txt")) == 0


@pytest.mark.parametrize(("lines", "expected"), [
    (["SecureBoot enabled"], True), (["SecureBoot disabled"], False),
    (["legacy BIOS"], False), (["EFI variables are not supported on this system"], None)])
def test_secure_boot(lines, expected):
    assert SecureBoot().process(lines) is expected


def test_container_and_packages():
    assert Container().process(["docker"]) == "docker"
    assert Container().process([""]) == ""
    packages = NvidiaPackages().process(fixture_lines("dpkg", "ubuntu-22.04_t4_535-server.txt"))
    assert packages["nvidia-utils-535-server"].startswith("535.183.01")


def test_venv_packages_are_canonical():
    assert VenvPackages().process(["TensorFlow_CPU 2.21.0", "torch 2.13.0+cpu"]) == {
        "tensorflow-cpu": "2.21.0", "torch": "2.13.0+cpu"}


def test_host_facts_through_a_recorded_host():
    """The whole HostFacts of a recorded HGX host, through the same reader verify uses."""
    from tests.fake_hosts import facts as fake_facts

    responses = fake_facts("debian-13", "h100x8", driver="580.95.05",
                           nvidia_packages="ubuntu-22.04_t4_535-server")
    read = transcript_reader(responses)
    host = host_facts(read, {"gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8})
    assert (host.os_id, host.os_release, len(host.gpus), host.nvswitches) == ("debian", "13", 8,
                                                                              4)
    assert host.installed_driver == "580.95.05" and host.kernel_release == "6.12.48+deb13-amd64"
    assert dict(host.nvidia_packages)["nvidia-utils-535-server"].startswith("535")


def test_declared_gpus_stand_in_where_none_is_visible():
    from tests.fake_hosts import facts as fake_facts

    read = transcript_reader(fake_facts("debian-12", None, container="docker"))
    host = host_facts(read, {"gpu_model": "NVIDIA L4", "gpu_count": 2})
    assert host.gpus == ("NVIDIA L4", "NVIDIA L4") and host.in_container
    assert host_facts(read, {"gpu_model": None, "gpu_count": 0}).gpus == ()


@pytest.mark.parametrize(("lines", "expected"), [
    (fixture_lines("display", "ubuntu-24.04-gdm3.txt"), "gdm3"),
    (["display-manager-unit sddm.service"], "sddm"),
    (["session tty", "session wayland"], "wayland session"),
    (["session tty", "session unspecified"], None),  # ssh logins on a server
    ([], None),
])
def test_display(lines, expected):
    assert display_from(lines) == expected
    if lines:
        assert Display().process(lines) == expected


def test_display_command_runs_in_a_plain_shell():
    """The command itself, on this controller (a server: no display manager, no session)."""
    import subprocess

    def run(command: str) -> tuple[int, str]:
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
        return out.returncode, out.stdout

    assert run_fact(run, Display) is None


def test_subordinate_ids_read_a_real_file(tmp_path):
    import subprocess

    path = tmp_path / "subuid"
    # As shadow writes it, with a uid-owned line, a comment and a line no tool would accept.
    path.write_text("alice:100000:65536\n1002:165536:65536\n# note\nbroken:line\n")
    command = SubordinateIds().command(str(path))
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert SubordinateIds().process(out.stdout.splitlines()) == [
        {"owner": "alice", "start": 100000, "count": 65536},
        {"owner": "1002", "start": 165536, "count": 65536}]
    missing = subprocess.run(["sh", "-c", SubordinateIds().command(str(tmp_path / "none"))],
                             capture_output=True, text=True)
    assert missing.returncode == 0 and missing.stdout == ""


def test_nvidia_dev_char_links_on_real_device_nodes(tmp_path):
    """The fact's own command over a /dev made here with mknod: one node linked, one not, one
    linked elsewhere."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    dev = tmp_path / "dev"
    (dev / "char").mkdir(parents=True)
    (dev / "nvidia-caps").mkdir()
    for name, minor in (("nvidia0", 0), ("nvidia1", 1), ("nvidiactl", 255)):
        os.mknod(dev / name, 0o600 | 0o020000, os.makedev(195, minor))
    os.mknod(dev / "nvidia-caps" / "nvidia-cap1", 0o600 | 0o020000, os.makedev(508, 1))
    os.symlink("../nvidia0", dev / "char" / "195:0")
    os.symlink("../nvidia0", dev / "char" / "195:255")  # points at the wrong node
    os.symlink("../nvidia-caps/nvidia-cap1", dev / "char" / "508:1")
    command = NvidiaDevCharLinks.command.replace("/dev/", f"{dev}/")
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    # The output as it reads on a host, where the folder is /dev itself.
    nodes = NvidiaDevCharLinks().process(out.stdout.replace(str(dev), "/dev").splitlines())
    assert [(n["node"], n["devno"]) for n in nodes] == [
        ("/dev/nvidia0", "195:0"), ("/dev/nvidia1", "195:1"), ("/dev/nvidiactl", "195:255"),
        ("/dev/nvidia-caps/nvidia-cap1", "508:1")]
    assert missing_dev_char_links(nodes) == ["/dev/nvidia1 (195:1)",
                                               "/dev/nvidiactl (195:255)"]
