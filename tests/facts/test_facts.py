"""One parser per fact, on recorded output: the deploy (pyinfra) and verify (testinfra) both
read a host through these classes (dlws.facts.readers.pyinfra_reader / testinfra_reader)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dlws.facts.batch import run_fact
from dlws.facts.gpu import (
    NvidiaDevCharLinks,
    NvidiaModuleVersion,
    NvidiaPackages,
    NvidiaPciDevices,
    NvSwitchCount,
    installed_user_space_version,
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
    from tests.fake_hosts import facts as fake_facts

    proc = (READINGS / f"proc-driver-nvidia-version-{case}.txt").read_text()
    assert NvidiaModuleVersion().process(proc.splitlines()) == version
    # The module in use wins over an installed user space of another version (pending reboot):
    # the recorded packages are 535.183.01's.
    read = transcript_reader(fake_facts("ubuntu-22.04", "h100x8", driver=proc,
                                        nvidia_packages="ubuntu-22.04_t4_535-server"))
    assert host_facts(read, {}).installed_driver == version


@pytest.mark.parametrize(("packages", "version"), [
    ({"nvidia-utils-580": "580.95.05-0ubuntu0.24.04.2"}, "580.95.05"),  # Ubuntu's branch
    # Debian's nvidia-smi, with an epoch, before any other branch's utilities
    ({"nvidia-utils-535": "535.183.01-0ubuntu1", "nvidia-smi": "1:550.163.01-2"}, "550.163.01"),
    ({"nvidia-utils-570-server": "570.172.08-0ubuntu1", "nvidia-utils-535": "535.183.01-1"},
     "535.183.01"),  # two branches: the first by name, as dpkg-query listed them
    ({"nvidia-container-toolkit": "1.17.3-1", "libnvidia-ml1": "550.163.01-2"}, None),
    ({}, None),
])
def test_installed_user_space_version_from_dpkgs_list(packages, version):
    assert installed_user_space_version(packages) == version


def test_without_a_loaded_module_the_installed_user_space_is_the_driver():
    from tests.fake_hosts import facts as fake_facts

    read = transcript_reader(fake_facts("ubuntu-22.04", "h100x8",
                                        nvidia_packages="ubuntu-22.04_t4_535-server"))
    host = host_facts(read, {})
    assert host.installed_driver == "535.183.01"
    assert dict(host.nvidia_packages)["nvidia-utils-535-server"].startswith("535.183.01")
    bare = host_facts(transcript_reader(fake_facts("ubuntu-22.04", "h100x8")), {})
    assert (bare.installed_driver, bare.nvidia_packages) == (None, ())


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


def _programs_started(command: str, tmp_path: Path, folders: dict[str, Path]) -> tuple[str, list]:
    """Run a fact's command in /bin/sh with its system folders moved under tmp_path and every
    program it may start (cat, cut, lspci) a recorder on PATH: (its output, programs started)."""
    bin_dir, log = tmp_path / "bin", tmp_path / "started"
    bin_dir.mkdir(exist_ok=True)
    for name in ("cat", "cut", "lspci"):
        real = "printf '%s\\n' '01:00.0 3D controller [0302]: NVIDIA Corporation AD102GL [L40S] " \
               "[10de:26b9] (rev a1)'" if name == "lspci" else f'exec /usr/bin/{name} "$@"'
        (bin_dir / name).write_text(f"#!/bin/sh\necho {name} >> {log}\n{real}\n")
        (bin_dir / name).chmod(0o755)
    for system, moved in folders.items():
        assert system in command, system  # the fact still reads that folder
        command = command.replace(system, str(moved))
    result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, check=True,
                            env={"PATH": str(bin_dir)})
    return result.stdout, log.read_text().split() if log.exists() else []


def _pci(tmp_path: Path, *vendors: str) -> Path:
    """A sysfs PCI device folder with one function per vendor id (the last without newline)."""
    root = tmp_path / "pci"
    root.mkdir()
    for index, vendor in enumerate(vendors):
        function = root / f"0000:00:{index:02x}.0"
        function.mkdir()
        (function / "vendor").write_text(vendor + ("" if index == len(vendors) - 1 else "\n"))
    return root


@pytest.mark.parametrize(("vendors", "started", "found"), [
    (("0x8086", "0x1af4", "0x1af4"), [], 0),  # a CPU host: the shell's own read, no program
    (("0x8086", "0x10de"), ["lspci"], 1),  # an NVIDIA function, even without its newline
    ((), ["lspci"], 1),  # sysfs lists nothing: lspci decides
])
def test_pci_devices_start_lspci_only_where_sysfs_shows_nvidia(tmp_path, vendors, started, found):
    output, programs = _programs_started(NvidiaPciDevices.command, tmp_path,
                                         {"/sys/bus/pci/devices": _pci(tmp_path, *vendors)})
    assert programs == started
    assert len(NvidiaPciDevices().process(output.splitlines())) == found


@pytest.mark.parametrize(("files", "started", "version"), [
    ({}, [], None),  # no module loaded: no program
    ({"proc/version": "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  "
                      "Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Sep 25 2025\n"},
     ["cat"], "580.95.05"),
    ({"module/version": "570.172.08\n"}, ["cat"], "570.172.08"),
])
def test_module_version_starts_cat_only_where_a_module_is_loaded(tmp_path, files, started,
                                                                  version):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    output, programs = _programs_started(
        NvidiaModuleVersion.command, tmp_path,
        {"/proc/driver/nvidia": tmp_path / "proc", "/sys/module/nvidia": tmp_path / "module"})
    assert programs == started
    assert NvidiaModuleVersion().process(output.splitlines()) == version


def test_venv_packages_runs_nothing_of_the_environment(tmp_path):
    """The reading lists the environment's distributions without its site: a .pth file there
    (code Python's site runs at every start) does not run, as root, when the deploy or verify
    reads the environment."""
    import subprocess
    import sys

    prefix = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = prefix / "lib" / "python{}.{}".format(*sys.version_info[:2]) / "site-packages"
    info = site / "Demo_Pkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 1.0\n")
    marker = tmp_path / "ran"
    (site / "zz_planted.pth").write_text(f"import os; open({str(marker)!r}, 'w').close()\n")
    out = subprocess.run(["sh", "-c", str(VenvPackages().command(str(prefix)))],
                         capture_output=True, text=True, check=True)
    assert VenvPackages().process(out.stdout.splitlines()) == {"demo-pkg": "1.0"}, out.stderr
    assert not marker.exists()
    # (the environment's own Python, with its site, does run it: the plant is live)
    subprocess.run([str(prefix / "bin" / "python"), "-c", "pass"], check=True)
    assert marker.exists()
