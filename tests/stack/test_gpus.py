"""dlws.stack.gpus: every GPU of the table found by name and PCI ID, and resolvable."""

from __future__ import annotations

import pytest

from dlws.stack import (
    GPU_MODELS,
    StackRequest,
    find_gpu,
    resolve,
)
from dlws.stack.table import version_key
from tests.stack.cases import (
    OSES,
    facts,
)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        pytest.param("10de:2684", "NVIDIA GeForce RTX 4090", id="pci-full"),
        pytest.param("2684", "NVIDIA GeForce RTX 4090", id="pci-short"),
        pytest.param("10DE:1EB8", "Tesla T4", id="pci-upper"),
        pytest.param("nvidia geforce rtx 4090", "NVIDIA GeForce RTX 4090", id="name-lower"),
        pytest.param("RTX 4090", "NVIDIA GeForce RTX 4090", id="name-no-prefix"),
        pytest.param("GeForce RTX 5090", "NVIDIA GeForce RTX 5090", id="name-no-nvidia"),
        pytest.param("T4", "Tesla T4", id="name-no-tesla"),
        pytest.param("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", id="name-exact"),
        pytest.param("rtx-3090", "NVIDIA GeForce RTX 3090", id="slug"),
    ],
)
def test_find_gpu(text, name):
    assert find_gpu(text).name == name


@pytest.mark.parametrize("os_name", OSES)
@pytest.mark.parametrize("model", GPU_MODELS, ids=lambda m: m.slug)
def test_every_model_resolves_on_auto(os_name, model):
    # Arm-only parts (Grace superchips, GB10) on their own machine; every other one on x86_64.
    machine = model.machines[0] if model.machines else "x86_64"
    stack = resolve(facts(os_name, model.pci_ids[0], machine=machine), StackRequest())
    assert stack.driver.branch and stack.torch.version, stack.as_dict()


def test_gpu_table_is_consistent():
    assert len({m.name for m in GPU_MODELS}) == len(GPU_MODELS), "a name is listed twice"
    for model in GPU_MODELS:
        assert all(pci.startswith("10de:") and len(pci) == 9 for pci in model.pci_ids), model
        assert find_gpu(model.name) == model
        for pci in model.pci_ids:
            # By ID the model is that device's own record: one ID, the same architecture.
            by_id = find_gpu(pci)
            assert (by_id.pci_ids, by_id.arch) == ((pci,), model.arch)
            assert version_key(by_id.compute_capability) >= version_key(
                model.compute_capability)
