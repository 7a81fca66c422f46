"""dlws.stack.cuda: the toolkit, cuDNN and NCCL choices."""

from __future__ import annotations

import pytest

from dlws.stack import (
    StackRequest,
    resolve,
)
from tests.stack.cases import (
    facts,
)


def test_multi_gpu_gets_system_nccl_on_debian_13():
    stack = resolve(facts("debian-13", "10de:2236", "10de:2236"), StackRequest())
    assert stack.nccl.version == "2.22.3"
    assert stack.gpu.models == ("NVIDIA A10", "NVIDIA A10")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param({"tensorflow": "none", "torch": "none"}, ("12.4", "9.0", "distro"),
                     id="no-frameworks-distro-cudnn"),
        pytest.param({}, ("12.4", "wheels", "wheels"), id="frameworks-bring-cudnn"),
        pytest.param({"cudnn": "9.0"}, ("12.4", "9.0", "distro"), id="pinned-distro-cudnn"),
    ],
)
def test_cudnn_choice_debian_13(request_, expected):
    stack = resolve(facts("debian-13", "Tesla T4"), StackRequest(**request_))
    assert (stack.cuda.version, stack.cudnn.version, stack.cudnn.source) == expected
