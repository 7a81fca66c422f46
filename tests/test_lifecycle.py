"""A workstation's later life, from recorded readings: kernel updates, driver upgrades, disks.

Unit level (pure functions and fact parsers on recorded command output) and plan level (the
real deploy file on pyinfra @fake hosts): nothing here can load a module or boot a kernel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dlws.facts.gpu_readings import installed_nvml_version, loaded_driver_version, reboot_pending
from dlws.facts.readers import testinfra_reader as fact_reader
from dlws.facts.storage import BlockDevice, SharedFolder
from dlws.roles import all_keys
from dlws.roles.nvidia_driver import BRANCH_PIN, branch_pin
from dlws.roles.storage import acl_entries, disk_verdict
from dlws.roles.storage.defaults import disk_with_defaults
from dlws.stack import kernel
from dlws.validate.inventory import host_problems
from tests.fake_hosts import facts, plan

READINGS = Path(__file__).parent / "fixtures" / "readings"


# --- Kernel updates ------------------------------------------------------------------------

@pytest.mark.parametrize(("os_id", "release", "kernel_release", "images", "metapackage",
                          "verified"), [
    ("debian", "12", "6.1.0-28-amd64", ["linux-image-6.1.0-28-amd64", "linux-image-amd64"],
     "linux-headers-amd64", True),
    ("debian", "12", "6.1.0-28-cloud-amd64", ["linux-image-cloud-amd64"],
     "linux-headers-cloud-amd64", True),
    ("debian", "12", "6.1.0-28-rt-amd64", ["linux-image-rt-amd64"], "linux-headers-rt-amd64",
     True),
    ("debian", "13", "6.12.48+deb13-amd64", ["linux-image-amd64"], "linux-headers-amd64", True),
    ("debian", "12", "6.1.0-28-arm64", ["linux-image-arm64"], "linux-headers-arm64", False),
    # No metapackage installed: derived from uname -r, and the plan says so.
    ("debian", "12", "6.1.0-28-amd64", ["linux-image-6.1.0-28-amd64"], "linux-headers-amd64",
     True),
    ("ubuntu", "24.04", "6.8.0-51-generic", ["linux-image-generic"], "linux-headers-generic",
     True),
    ("ubuntu", "22.04", "6.8.0-51-generic", ["linux-image-generic-hwe-22.04"],
     "linux-headers-generic-hwe-22.04", True),
    ("ubuntu", "24.04", "6.14.0-29-generic", ["linux-image-generic-hwe-24.04",
                                              "linux-image-generic"],
     "linux-headers-generic-hwe-24.04", True),
    ("ubuntu", "22.04", "5.15.0-125-generic", ["linux-image-virtual"], "linux-headers-virtual",
     False),
    ("ubuntu", "24.04", "6.8.0-1015-aws", ["linux-image-aws"], "linux-headers-aws", True),
    ("ubuntu", "24.04", "6.8.0-1017-azure", ["linux-image-azure"], "linux-headers-azure", False),
    ("ubuntu", "24.04", "6.8.0-1019-gcp", [], "linux-headers-gcp", False),
])
def test_headers_metapackage_follows_the_running_kernels_flavour(
        os_id, release, kernel_release, images, metapackage, verified):
    headers = kernel.headers_for(os_id, release, kernel_release, images)
    assert headers.packages == (f"linux-headers-{kernel_release}", metapackage), headers
    assert headers.verified is verified, headers
    if not any(image.startswith("linux-image-") and not image[12].isdigit() for image in images):
        assert "no linux-image metapackage" in headers.basis, headers


def test_backports_kernel_headers_say_where_they_come_from():
    headers = kernel.headers_for("debian", "12", "6.12.12+bpo-amd64", ["linux-image-amd64"])
    assert headers.metapackage == "linux-headers-amd64"
    assert "backports" in headers.basis


def test_dkms_status_and_a_missing_module_names_the_kernel_and_the_fix():
    status = kernel.dkms_status((READINGS / "dkms-status-two-kernels.txt").read_text())
    assert [(s["module"], s["kernel"], s["state"]) for s in status] == [
        ("nvidia-current", "6.1.0-55-amd64", "installed"),
        ("nvidia-current", "6.1.0-56-amd64", "installed")]
    kernels = {"6.1.0-56-amd64": "default boot", "6.1.0-57-amd64": "installed"}
    modules = {"6.1.0-56-amd64": "535.216.01", "6.1.0-57-amd64": None}
    problems = kernel.module_problems(kernels, modules, "535", "proprietary",
                                      {"6.1.0-56-amd64": "NVIDIA"},
                                      kernel.dkms_fix("6.1.0-57-amd64"))
    assert problems == [
        "installed kernel 6.1.0-57-amd64 has no NVIDIA module: install its headers and build "
        "it: apt install linux-headers-6.1.0-57-amd64 && dkms autoinstall -k 6.1.0-57-amd64"]
    wrong = kernel.module_problems({"6.1.0-56-amd64": "running"}, {"6.1.0-56-amd64": "550.1"},
                                   "535", None)
    assert wrong and "has NVIDIA module 550.1, the plan says branch 535" in wrong[0]


def test_default_boot_kernel_is_the_newest():
    assert kernel.newest_kernel(["/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.1.0-28-amd64",
                                 "/boot/vmlinuz-6.1.0-10-amd64"]) == "6.1.0-28-amd64"
    assert kernel.newest_kernel([]) is None


# --- Automatic upgrades ----------------------------------------------------------------------

def test_recorded_version_mismatch_names_the_reboot():
    """A recorded reading: module 535.216.01 loaded, unattended-upgrades installed 535.230.02."""
    loaded = loaded_driver_version(
        (READINGS / "proc-driver-nvidia-version-proprietary-535.txt").read_text())
    installed = installed_nvml_version((READINGS / "libnvidia-ml-after-upgrade.txt").read_text())
    assert (loaded, installed) == ("535.216.01", "535.230.02")
    message = reboot_pending(loaded, installed)
    assert message and "535.216.01" in message and "535.230.02" in message
    assert "reboot" in message and "Driver/library version mismatch" in message
    assert reboot_pending(loaded, loaded) is None


def test_branch_pin_keeps_every_driver_package_on_the_branch():
    text = branch_pin("535")
    assert "Pin: version 535.*\nPin-Priority: 1000\n" in text
    assert "Package: *nvidia* libcuda*" in text


# --- Data disks --------------------------------------------------------------------------------

DISK = disk_with_defaults({"device": "/dev/disk/by-id/nvme-lab-1", "mount": "/data"})


def device(*sections: str, path: str = "/dev/nvme1n1") -> dict | None:
    """BlockDevice's parser on its command's output, sections given as "--name\\nlines"."""
    return BlockDevice().process([f"path={path}", *"\n".join(sections).splitlines()])


@pytest.mark.parametrize(("found", "verdict", "fragment"), [
    (device("--blkid", "--wipefs", "--children", "--holders", "--mounts"), "format", "blank"),
    (device("--blkid\nUUID=1234\nTYPE=ext4", "--wipefs\next4 0x438"), "mount",
     "carries ext4 UUID=1234"),
    (device("--blkid\nUUID=1234\nTYPE=ext4", "--wipefs\next4 0x438", "--mounts\n/data ext4"),
     "mount", "carries ext4"),
    (device("--blkid\nTYPE=xfs", "--wipefs\nxfs 0x0"), "refuse", "a xfs filesystem, not the"),
    (device("--blkid\nPTTYPE=gpt", "--wipefs\nPMBR 0x1fe\ngpt 0x200", "--children\nnvme1n1p1"),
     "refuse", "gpt partition table with partitions nvme1n1p1"),
    (device("--blkid\nPTTYPE=dos", "--wipefs\ndos 0x1fe"), "refuse", "dos partition table"),
    (device("--blkid\nTYPE=LVM2_member", "--wipefs\nLVM2_member 0x218"), "refuse",
     "LVM2_member"),
    (device("--blkid\nTYPE=linux_raid_member", "--wipefs\nlinux_raid_member 0x1000"), "refuse",
     "linux_raid_member"),
    (device("--blkid", "--wipefs\nbtrfs 0x10040"), "refuse", "btrfs at 0x10040"),
    (device("--blkid", "--holders\ndm-0"), "refuse", "in use by dm-0"),
    (device("--blkid\nTYPE=ext4", "--mounts\n/mnt/old ext4"), "refuse", "mounted at /mnt/old"),
    (None, "refuse", "no block device"),
    (BlockDevice().process(["tools-missing wipefs lsblk"]), "refuse",
     "cannot be inspected: wipefs, lsblk missing"),
])
def test_disk_verdict(found, verdict, fragment):
    got, reason = disk_verdict(DISK, found)
    assert got == verdict and fragment in reason, (got, reason)


def test_shared_folder_acl_parse():
    found = SharedFolder().process([
        "stat root lab 2775", "user::rwx", "group::rwx", "group:lab:rwx", "mask::rwx",
        "other::r-x", "default:user::rwx", "default:group::rwx", "default:group:lab:rwx",
        "default:mask::rwx", "default:other::r-x"])
    assert found["mode"] == "2775" and not set(acl_entries("lab")) - set(found["acl"])


@pytest.mark.parametrize(("disks", "fragment"), [
    ([{"device": "/dev/sdb", "mount": "/data"}], "not a stable path"),
    ([{"device": "/dev/disk/by-id/x", "mount": "/usr"}], "is a system folder"),
    ([{"device": "/dev/disk/by-id/x", "mount": "/data", "fs": "btrfs"}], "allowed: 'ext4'"),
    ([{"device": "/dev/disk/by-id/x", "mount": "/data", "options": "defaults; rm -rf /"}],
     "without spaces"),
    ([{"device": "/dev/disk/by-id/x", "mountpoint": "/data"}], "did you mean 'mount'"),
    ([{"serial": "S1 $(reboot)", "mount": "/data"}], "letters, digits"),
    ([{"device": "/dev/disk/by-id/x", "serial": "S1", "mount": "/data"}], "exactly one"),
    ([{"device": "/dev/disk/by-id/x", "mount": "/d"}, {"device": "/dev/disk/by-id/y",
                                                        "mount": "/d"}], "more than one disk"),
])
def test_bad_disks_are_refused(disks, fragment):
    found = [str(p) for p in host_problems("ws-01", {"storage_disks": disks}, all_keys())]
    assert any("storage_disks" in m and fragment in m for m in found), found


@pytest.mark.parametrize(("users", "fragment"), [
    (["root"], "system account"), (["www-data"], "system account"),
    (["systemd-network"], "system account"), (["Ada"], "'Ada'"), (["-o"], "'-o'"),
    (["ada", "ada"], "'ada'"),
])
def test_bad_lab_users_are_refused(users, fragment):
    found = [str(p) for p in host_problems("ws-01", {"base_lab_users": users}, all_keys())]
    assert any("base_lab_users" in m and fragment in m for m in found), found


# --- Plan level: the real deploy file on @fake hosts --------------------------------------------

def _debian_gpu(**more) -> dict:
    data = {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 3090",
            "nvidia_driver_source": "distro", "python_env_require_hashes": False,
            "fake_responses": {**facts("debian-12", "rtx-3090"), "uname -s": "Linux",
                               "'linux-image-*'": ["linux-image-6.1.0-28-amd64",
                                                   "linux-image-amd64"]}}
    for key, value in more.items():
        if key == "responses":
            data["fake_responses"].update(value)
        else:
            data[key] = value
    return data


def test_plan_debian_dkms_installs_the_headers_metapackage_and_pins_the_branch():
    run = plan({"@fake/deb": _debian_gpu()})["@fake/deb"]
    assert run.error is None, run.error
    assert run.stack.os.kernel_headers == ("linux-headers-6.1.0-28-amd64", "linux-headers-amd64")
    assert any({"linux-headers-6.1.0-28-amd64", "linux-headers-amd64"} <= set(packages)
               for packages in run.apt_installs()), run.describe()
    assert any("linux-headers-amd64 follows new kernels" in note and "linux-image-amd64" in note
               for note in run.stack.notes), run.stack.notes
    assert run.uploads()[BRANCH_PIN] == branch_pin("535"), run.describe()
    assert not [c for c in run.commands() if "apt-mark hold" in c], run.describe()


def test_plan_hold_policy_holds_the_driver_packages():
    run = plan({"@fake/deb": _debian_gpu(nvidia_driver_updates="hold")})["@fake/deb"]
    holds = [c for c in run.commands() if c.startswith("apt-mark hold -- ")]
    assert holds and "nvidia-kernel-dkms" in holds[0] and "nvidia-driver" in holds[0], \
        run.describe()


def test_plan_ubuntu_prebuilt_modules_keep_their_metapackage_and_no_headers_metapackage():
    data = {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090",
            "python_env_require_hashes": False,
            "fake_responses": {**facts("ubuntu-24.04", "rtx-4090"),
                               "'linux-image-*'": ["linux-image-generic"]}}
    run = plan({"@fake/u": data})["@fake/u"]
    installs = run.apt_installs()
    assert run.stack.os.kernel_headers == ("linux-headers-6.8.0-51-generic",), run.stack.os
    assert not any("linux-headers-generic" in i for i in installs), run.describe()
    assert any("linux-modules-nvidia-580-open-generic" in i for i in installs), run.describe()


def test_plan_ubuntu_hwe_with_nvidias_repository_gets_the_hwe_headers():
    data = {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090",
            "nvidia_driver_source": "cuda_repo", "python_env_require_hashes": False,
            "fake_responses": {**facts("ubuntu-22.04", "rtx-4090", kernel="6.8.0-51-generic"),
                               "'linux-image-*'": ["linux-image-generic-hwe-22.04"]}}
    run = plan({"@fake/u": data})["@fake/u"]
    assert run.stack.os.kernel_headers == ("linux-headers-6.8.0-51-generic",
                                           "linux-headers-generic-hwe-22.04"), run.describe()


def test_plan_refuses_a_system_account_found_on_the_host():
    # `labsvc` is no name the inventory check knows, but uid 998 on the host: a service.
    passwd = "labsvc:x:998:998::/var/lib/labsvc:/usr/sbin/nologin|labsvc|labsvc||*"
    run = plan({"@fake/deb": _debian_gpu(base_lab_users=["labsvc"],
                                         responses={"cat /etc/passwd": [passwd]})})["@fake/deb"]
    assert run.error and "base_lab_users: labsvc (uid 998) is a system account" in run.error, \
        run.describe()


def test_plan_removed_lab_user_is_reported_not_deleted():
    passwd = ["ada:x:1001:1001::/home/ada:/bin/bash|ada|ada video render lab||*",
              "grace:x:1002:1002::/home/grace:/bin/bash|grace|grace video render lab||*"]
    run = plan({"@fake/deb": _debian_gpu(
        base_lab_users=["ada"],
        responses={"cat /etc/passwd": passwd, "/etc/dlws/lab-users": ["ada", "grace"]})}
    )["@fake/deb"]
    assert run.error is None, run.error
    assert not [c for c in run.commands() if "userdel" in c], run.describe()
    assert run.uploads()["/etc/dlws/lab-users"].splitlines()[1:] == ["ada", "grace"]
    assert not [c for c in run.commands() if c.startswith("usermod") and "-s" in c]


def test_plan_refuses_a_disk_with_a_partition_table_before_any_change():
    disk = {"device": "/dev/disk/by-id/nvme-lab-1", "mount": "/data"}
    run = plan({"@fake/deb": _debian_gpu(
        storage_disks=[disk],
        responses={"blkid -p -o export": ["path=/dev/nvme1n1", "--blkid", "PTTYPE=gpt",
                                          "--wipefs", "PMBR 0x1fe", "--children", "nvme1n1p1",
                                          "--holders", "--mounts"]})})["@fake/deb"]
    assert run.error and "it holds a gpt partition table with partitions nvme1n1p1" in \
        run.error and "nothing was changed on any host" in run.error, run.describe()


class _File:
    def __init__(self, text: str | None):
        self.exists, self.content_string = text is not None, text or ""


class _Out:
    def __init__(self, stdout: str = "", rc: int = 0):
        self.stdout, self.stderr, self.rc = stdout, "", rc


class RecordedHost:
    """A testinfra-like host answering from recorded readings (files and command outputs)."""

    def __init__(self, files: dict[str, str], commands: dict[str, str]):
        self.files, self.commands = files, commands

    def file(self, path: str) -> _File:
        return _File(self.files.get(path))

    def run(self, command: str) -> _Out:
        for fragment, stdout in self.commands.items():
            if fragment in command:
                return _Out(stdout)
        return _Out("", 1)


def test_verify_fails_on_a_recorded_module_user_space_mismatch_with_the_reboot_fix():
    """verify's own check, on readings recorded after unattended-upgrades moved the user space."""
    from types import SimpleNamespace

    from dlws.verify.test_nvidia_driver import test_kernel_module_matches_user_space as check

    # The facts' own commands answered from the readings (verify reads them through dlws.facts).
    host = RecordedHost(
        files={},
        commands={"/proc/driver/nvidia/version":
                  (READINGS / "proc-driver-nvidia-version-proprietary-535.txt").read_text(),
                  "libnvidia-ml": (READINGS / "libnvidia-ml-after-upgrade.txt").read_text()})
    recorded = {}
    target = {"gpu_count": 1}
    plan_ = SimpleNamespace(driver=SimpleNamespace(branch="535"))
    with pytest.raises(AssertionError) as failed:
        check(host, target, plan_, lambda key, value: recorded.update({key: value}),
              fact_reader(host))
    assert "535.216.01" in str(failed.value) and "535.230.02" in str(failed.value)
    assert "reboot it" in str(failed.value)
    assert "reboot_pending" in recorded
    # The same host once rebooted into the new module: the check passes, nothing recorded.
    host.commands["/proc/driver/nvidia/version"] = host.commands[
        "/proc/driver/nvidia/version"].replace("535.216.01", "535.230.02")
    recorded.clear()
    check(host, target, plan_, lambda key, value: recorded.update({key: value}),
          fact_reader(host))
    assert recorded == {}


def test_verify_fails_when_the_branch_pin_names_another_branch():
    from types import SimpleNamespace

    from dlws.verify.test_nvidia_driver import test_driver_branch_pinned as check

    host = RecordedHost(files={BRANCH_PIN: branch_pin("550")}, commands={})
    plan_ = SimpleNamespace(driver=SimpleNamespace(branch="535"))
    with pytest.raises(AssertionError, match="does not pin branch 535"):
        check(host, {"nvidia_driver_updates": "within_branch"}, plan_, fact_reader(host))
    pinned = RecordedHost(files={BRANCH_PIN: branch_pin("535")}, commands={})
    check(pinned, {"nvidia_driver_updates": "within_branch"}, plan_, fact_reader(pinned))


def test_verify_fails_on_a_datasets_folder_without_default_acls():
    """A recorded folder someone chmod'ed by hand: group and setgid right, no default ACL."""
    from dlws.verify.test_storage import test_datasets_folders_shared_with_the_lab as check

    target = {"storage_disks": [{"device": "/dev/disk/by-id/nvme-lab-1", "mount": "/data"}],
              "base_lab_group": "lab"}
    host = RecordedHost(files={}, commands={"getfacl": "stat root lab 2775\nuser::rwx\n"
                                                       "group::rwx\nother::r-x\n"})
    with pytest.raises(AssertionError) as failed:
        check(target, fact_reader(host))
    assert "/data/datasets lacks the ACL entries" in str(failed.value)
    assert "default:group:lab:rwx" in str(failed.value)
