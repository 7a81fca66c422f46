"""The driver facts verify reads (the loaded module, the installed user space, NVML's library),
as pyinfra tests its facts: each case a recorded command, its output and the value expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dlws.facts.batch import run_fact
from dlws.facts.gpu import InstalledNvmlVersion, NvidiaModuleVersion, NvidiaUserSpaceVersion
from dlws.facts.gpu_readings import INSTALLED_NVML_COMMAND

READINGS = Path(__file__).parents[1] / "fixtures" / "readings"
MODULE_COMMAND = ("if [ -e /proc/driver/nvidia/version ]; then cat /proc/driver/nvidia/version; "
                  "elif [ -e /sys/module/nvidia/version ]; then cat /sys/module/nvidia/version; "
                  "fi 2>/dev/null || true")
USER_SPACE_COMMAND = ("dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' "
                      "'*nvidia*' '*cuda*' 2>/dev/null | awk '$1 == \"ii\" {print $2, $3}' || true")


@dataclass(frozen=True)
class Case:
    name: str
    fact: type
    command: str
    output: str
    expected: str | None


CASES = [
    Case("module-open-580", NvidiaModuleVersion, MODULE_COMMAND,
         (READINGS / "proc-driver-nvidia-version-open-580.txt").read_text(), "580.95.05"),
    Case("module-proprietary-535", NvidiaModuleVersion, MODULE_COMMAND,
         (READINGS / "proc-driver-nvidia-version-proprietary-535.txt").read_text(), "535.216.01"),
    Case("module-from-sysfs", NvidiaModuleVersion, MODULE_COMMAND, "570.172.08\n", "570.172.08"),
    Case("module-not-loaded", NvidiaModuleVersion, MODULE_COMMAND, "", None),
    Case("module-garbage", NvidiaModuleVersion, MODULE_COMMAND, "no such module\n", None),
    Case("user-space-ubuntu", NvidiaUserSpaceVersion, USER_SPACE_COMMAND,
         "libnvidia-compute-580 580.95.05-0ubuntu0.24.04.2\n"
         "nvidia-utils-580 580.95.05-0ubuntu0.24.04.2\n", "580.95.05"),
    Case("user-space-debian", NvidiaUserSpaceVersion, USER_SPACE_COMMAND,
         "nvidia-smi 1:550.163.01-2\nnvidia-kernel-dkms 550.163.01-2\n", "550.163.01"),
    Case("user-space-none", NvidiaUserSpaceVersion, USER_SPACE_COMMAND, "", None),
    Case("user-space-toolkit-only", NvidiaUserSpaceVersion, USER_SPACE_COMMAND,
         "nvidia-container-toolkit 1.17.3-1\n", None),
    Case("nvml-after-upgrade", InstalledNvmlVersion, INSTALLED_NVML_COMMAND,
         (READINGS / "libnvidia-ml-after-upgrade.txt").read_text(), "535.230.02"),
    Case("nvml-none", InstalledNvmlVersion, INSTALLED_NVML_COMMAND, "", None),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_recorded_fact(case):
    """The fact runs exactly the recorded command, and its parser gives the expected value."""
    assert case.fact().command == case.command
    seen = []

    def run(command: str) -> tuple[int, str]:
        seen.append(command)
        return 0, case.output

    assert run_fact(run, case.fact) == case.expected
    assert seen == [case.command]
