"""verify/test_containers.py's GPU checks against recorded answers: each passes on a good host
and fails, with its evidence, on a broken one (no GPU host here to run them for real)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dlws.inventory.targets import Target
from dlws.roles import all_defaults
from dlws.verify import test_containers as checks

CDI = (Path(__file__).parent / "fixtures" / "readings" / "cdi" / "rtx-4090x2_580.yaml").read_text()
TWO_GPUS = ("GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c)\n"
            "GPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-9a1b2c3d-0000-1111-2222-333344445555)\n")


@dataclass
class Out:
    stdout: str = ""
    rc: int = 0
    stderr: str = ""


class Host:
    """A testinfra host that answers from a table of command fragments (first match wins)."""

    def __init__(self, answers: dict[str, Out]):
        self.answers = answers

    def run(self, command: str) -> Out:
        return next((out for fragment, out in self.answers.items() if fragment in command), Out())


def target(gpus: int) -> Target:
    data = {**all_defaults(), "containers_engine": "docker", "gpu_count": gpus,
            "gpu_model": "NVIDIA GeForce RTX 4090"}
    return Target("ws-01", "local://", data)


def host(module: str = "580.95.05", spec: str | None = CDI, smi: str = TWO_GPUS,
         runtimes: str = '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}') -> Host:
    cdi = (f"module {module}\n" if module else "") + (f"present\n{spec}" if spec else "")
    return Host({"/.dockerenv": Out(rc=0), "/etc/cdi/nvidia.yaml": Out(cdi),
                 "docker info": Out(runtimes), "nvidia-smi -L": Out(smi)})


def test_good_gpu_host_passes():
    for check in (checks.test_nvidia_runtime_or_cdi_registered,
                  checks.test_cdi_spec_lists_every_declared_gpu,
                  checks.test_gpus_visible_in_a_container):
        check(host(), target(2))


@pytest.mark.parametrize(("check", "broken", "words"), [
    (checks.test_cdi_spec_lists_every_declared_gpu, {"spec": None}, "no /etc/cdi/nvidia.yaml"),
    (checks.test_cdi_spec_lists_every_declared_gpu, {"module": "590.44.01"},
     "made for driver 580.95.05, the loaded one is 590.44.01"),
    (checks.test_gpus_visible_in_a_container, {"smi": TWO_GPUS.splitlines()[0]},
     "a container sees 1 GPUs, 2 declared"),
    (checks.test_nvidia_runtime_or_cdi_registered, {"spec": None, "runtimes": '{"runc":{}}'},
     "neither the nvidia runtime"),
], ids=["no-spec", "stale-spec", "gpu-missing-in-container", "nothing-registered"])
def test_broken_gpu_host_fails(check, broken, words):
    with pytest.raises(AssertionError, match=words):
        check(host(**broken), target(2))


def test_more_gpus_declared_than_the_spec_names_fails():
    with pytest.raises(AssertionError, match=r"names GPUs \['0', '1'\], 4 declared"):
        checks.test_cdi_spec_lists_every_declared_gpu(host(), target(4))


def test_gpu_checks_skip_only_without_a_declared_gpu():
    with pytest.raises(pytest.skip.Exception, match="declared without GPUs"):
        checks.test_gpus_visible_in_a_container(host(), target(0))
