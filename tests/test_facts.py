"""One parser per fact, on recorded output: the deploy (pyinfra) and verify (testinfra) both
read a host through these classes (dlws.facts.pyinfra_reader / testinfra_reader)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlws import facts as f
from tests.fake_hosts import fixture_lines, transcript_reader

READINGS = Path(__file__).parent / "fixtures" / "readings"


@pytest.mark.parametrize(("case", "version"), [
    # The open module's line has "for x86_64" between "Kernel Module" and the version: the
    # deploy's sed used to read nothing there and fall back to dpkg.
    ("open-580", "580.95.05"),
    ("proprietary-535", "535.216.01"),
])
def test_driver_version_reads_both_module_lines(case, version):
    proc = (READINGS / f"proc-driver-nvidia-version-{case}.txt").read_text().splitlines()
    # The module in use wins over an installed user space of another version (pending reboot).
    assert f.NvidiaDriverVersion().process([*proc, "590.48.01-0ubuntu1"]) == version


@pytest.mark.parametrize(("lines", "version"), [
    (["580.95.05-0ubuntu0.24.04.2"], "580.95.05"),  # nvidia-utils-580, no module loaded
    (["1:550.163.01-2"], "550.163.01"),  # Debian's nvidia-smi, with an epoch
    ([""], None),
])
def test_driver_version_falls_back_to_the_installed_package(lines, version):
    assert f.NvidiaDriverVersion().process(lines) == version


def test_os_release():
    lines = fixture_lines("os-release", "ubuntu-24.04")
    assert f.OsRelease().process(lines) == {"id": "ubuntu", "version_id": "24.04",
                                            "codename": "noble"}


def test_pci_devices_and_nvswitches():
    lines = fixture_lines("lspci", "h100x8.txt")
    devices = f.NvidiaPciDevices().process(lines)
    assert len(devices) == 8 and {d["device_id"] for d in devices} == {"10de:2330"}
    assert f.NvSwitchCount().process(lines) == 4
    assert f.NvSwitchCount().process(fixture_lines("lspci", "rtx-4090.txt")) == 0


@pytest.mark.parametrize(("lines", "expected"), [
    (["SecureBoot enabled"], True), (["SecureBoot disabled"], False),
    (["legacy BIOS"], False), (["EFI variables are not supported on this system"], None)])
def test_secure_boot(lines, expected):
    assert f.SecureBoot().process(lines) is expected


def test_container_and_packages():
    assert f.Container().process(["docker"]) == "docker"
    assert f.Container().process([""]) == ""
    packages = f.NvidiaPackages().process(fixture_lines("dpkg", "ubuntu-22.04_t4_535-server.txt"))
    assert packages["nvidia-utils-535-server"].startswith("535.183.01")


def test_venv_packages_are_canonical():
    assert f.VenvPackages().process(["TensorFlow_CPU 2.21.0", "torch 2.13.0+cpu"]) == {
        "tensorflow-cpu": "2.21.0", "torch": "2.13.0+cpu"}


def test_host_facts_through_a_recorded_host():
    """The whole HostFacts of a recorded HGX host, through the same reader verify uses."""
    from tests.fake_hosts import facts as fake_facts

    responses = fake_facts("debian-13", "h100x8", driver="580.95.05",
                           nvidia_packages="ubuntu-22.04_t4_535-server")
    read = transcript_reader(responses)
    host = f.host_facts(read, {"gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8})
    assert (host.os_id, host.os_release, len(host.gpus), host.nvswitches) == ("debian", "13", 8,
                                                                              4)
    assert host.installed_driver == "580.95.05" and host.kernel_release == "6.12.48+deb13-amd64"
    assert dict(host.nvidia_packages)["nvidia-utils-535-server"].startswith("535")


def test_declared_gpus_stand_in_where_none_is_visible():
    from tests.fake_hosts import facts as fake_facts

    read = transcript_reader(fake_facts("debian-12", None, container="docker"))
    host = f.host_facts(read, {"gpu_model": "NVIDIA L4", "gpu_count": 2})
    assert host.gpus == ("NVIDIA L4", "NVIDIA L4") and host.in_container
    assert f.host_facts(read, {"gpu_model": None, "gpu_count": 0}).gpus == ()


@pytest.mark.parametrize(("lines", "expected"), [
    (fixture_lines("display", "ubuntu-24.04-gdm3.txt"), "gdm3"),
    (["display-manager-unit sddm.service"], "sddm"),
    (["session tty", "session wayland"], "wayland session"),
    (["session tty", "session unspecified"], None),  # ssh logins on a server
    ([], None),
])
def test_display(lines, expected):
    assert f.display_from(lines) == expected
    if lines:
        assert f.Display().process(lines) == expected


def test_display_command_runs_in_a_plain_shell():
    """The command itself, on this controller (a server: no display manager, no session)."""
    import subprocess

    def run(command: str) -> tuple[int, str]:
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
        return out.returncode, out.stdout

    assert f.run_fact(run, f.Display) is None
