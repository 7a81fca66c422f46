"""deploy/workstation.py per OS, GPU and driver source: every NVIDIA role's packages, offline."""

from __future__ import annotations

import pytest

from tests.plan.cases import (
    CASES,
    SOURCES,
    Case,
    Refused,
    assert_kernel_side,
    assert_nccl_pin,
    assert_repository,
    host_data,
    packages,
    run_case,
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_plan(case: Case | Refused):
    run = run_case(case.id, host_data(case.os, case.gpu, SOURCES[case.source]))
    if isinstance(case, Refused):
        assert run.error, f"the solver allowed it:\n{run.describe()}"
        assert f"host @fake/{case.id}: {case.key}:" in run.error, run.error
        assert run.ops == [], "refused before any operation is planned"
        return
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == case.driver, run.describe()
    assert packages(run, "Install the CUDA toolkit") == case.cuda, run.describe()
    assert (packages(run, "cuDNN and NCCL | Install") or "") == case.cudnn_nccl, run.describe()
    assert_repository(run, case.os, case.repo)
    assert_kernel_side(run, driver=bool(case.driver),
                       reboot="marker" if case.driver else "none")
    assert_nccl_pin(run, case.cudnn_nccl, case.repo)
    if case.driver:
        [persistenced] = run.named("nvidia-persistenced")
        assert persistenced.commands == ["systemctl enable nvidia-persistenced.service"], (
            "enabled only: the new module is not loaded before the reboot")
        flavour = run.stack.driver.flavour
        assert ("open" in case.driver) == (flavour == "open"), (case.driver, flavour)
        assert f"({flavour} kernel modules" in run.named("Install the NVIDIA driver")[0].name
        fabric = run.named("fabric manager")
        assert bool(fabric) == ("fabricmanager" in case.driver), run.describe()


def test_case_count():
    # 4 releases x 9 GPU setups x 2 sources; Debian refuses Blackwell and NVSwitch boards from
    # its own archive.
    assert len(CASES) == 72
    assert sum(isinstance(case, Refused) for case in CASES) == 6
