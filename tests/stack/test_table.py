"""The GPU table (dlws/stack/data/gpus.json): generated offline from NVIDIA's own lists, every
device ID they list recognised by every name, and branch support per device ID."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dlws.stack import StackError, find_gpu
from dlws.stack.table import (
    CUDA_MIN_DRIVER,
    GPU_DEVICES,
    GPU_TABLE,
    TENSORFLOW_BUILDS,
    TORCH_BUILDS,
    version_key,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "dlws" / "stack" / "data"
SOURCES = DATA / "sources"
REGENERATE = DATA / "regenerate.py"


def rows(name: str) -> list[list[str]]:
    lines = (SOURCES / name).read_text().splitlines()
    return [line.split("\t") for line in lines if line and not line.startswith("#")]


def _regenerate_module():
    spec = importlib.util.spec_from_file_location("dlws_regenerate", REGENERATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerate_reproduces_the_committed_table_byte_for_byte():
    assert _regenerate_module().render() == GPU_TABLE.read_text(), (
        "gpus.json differs from what its sources give: run python dlws/stack/data/regenerate.py")


def test_regenerate_runs_offline():
    """The script reads only the committed extracts: run it with no network at all (a new
    network namespace) where the machine allows one, else plainly."""
    command = [sys.executable, str(REGENERATE), "--check"]
    unshare = shutil.which("unshare")
    offline = unshare and subprocess.run([unshare, "--net", "true"],
                                         capture_output=True).returncode == 0
    if offline:
        command = [unshare, "--net", *command]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stderr


def test_regenerate_check_fails_on_a_changed_table(tmp_path, monkeypatch):
    module = _regenerate_module()
    copy = tmp_path / "gpus.json"
    copy.write_text(GPU_TABLE.read_text().replace('"2335"', '"2336"', 1))
    monkeypatch.setattr(module, "TABLE", copy)
    assert module.main(["--check"]) == 1


def test_every_source_is_recorded_with_its_version():
    manifest = json.loads((SOURCES / "SOURCES.json").read_text())
    table = json.loads(GPU_TABLE.read_text())
    assert table["sources"] == manifest
    extracted = {p.name for p in SOURCES.glob("*.tsv")}
    hand_kept = {"chips.tsv", "performance.tsv", "kernel-modules.tsv", "pypi-wheels.tsv",
                 "machines.tsv", "pypi-torch-aarch64.tsv"}
    assert extracted - hand_kept == set(manifest), "an extract without its source, or reverse"
    for name, source in manifest.items():
        assert source.get("package") or source.get("commit"), (name, source)
        assert source["entries"] == len(rows(name)), name


def _listed(name: str, lists: tuple[str, ...]) -> list[str]:
    return [devid.lower() for devid, named in rows(name)
            if set(named.split(",")) & set(lists)]


@pytest.mark.parametrize(("branch", "name", "lists"), [
    (535, "nvidia-detect-535.261.03.tsv", ("nvidia", "tesla-535")),
    (550, "nvidia-detect-550.163.01.tsv", ("nvidia",)),
])
def test_debians_branch_lists_agree(branch, name, lists):
    """Every ID Debian's nvidia-detect lists for a branch is known and supported by it (the
    one ID no NVIDIA list names, 10de:1eb9, is reported as unnamed)."""
    unnamed = set(json.loads(GPU_TABLE.read_text())["unnamed"])
    for devid in _listed(name, lists):
        if devid in unnamed:
            continue
        assert GPU_DEVICES[devid]["branches"].get(str(branch)), (devid, branch)


def test_every_listed_device_is_recognised_by_id_name_lspci_and_subsystem():
    """Every non-legacy device ID of NVIDIA's supported-gpus.json (550) and of the newest
    README: by PCI ID (several spellings), its nvidia-smi name, lspci's name, and with each
    subsystem NVIDIA lists for it."""
    ids = {r[0].lower() for r in rows("supported-gpus-550.163.01.tsv") if not r[3]}
    ids |= {r[0].lower() for r in rows("open-gpu-kernel-modules.tsv") if "595:" in r[3]}
    assert len(ids) > 400
    for devid in sorted(ids):
        device = GPU_DEVICES[devid]
        model = find_gpu(f"10de:{devid}")
        assert model.pci_ids == (f"10de:{devid}",) and model.name == device["names"][0]
        assert find_gpu(devid.upper()).name == model.name
        assert find_gpu(f"0x{devid}").name == model.name
        assert f"10de:{devid}" in find_gpu(model.name).pci_ids or (
            # a name NVIDIA gives IDs on different chips resolves to one of them
            find_gpu(model.name).name == model.name)
        lspci = f"01:00.0 3D controller [0302]: NVIDIA Corporation {device['lspci']} " \
                f"[10de:{devid}] (rev a1)"
        assert find_gpu(lspci).pci_ids == (f"10de:{devid}",), lspci
        for subsystem, name in device["subsystems"].items():
            vendor, sub = subsystem.split(":")
            assert find_gpu(f"10de:{devid}:{vendor}:{sub}").name == name
            assert find_gpu(f"{devid.upper()} {vendor.upper()} {sub.upper()}").name == name


# Real hosts the hand-typed table refused (issue 12): ID -> nvidia-smi name.
REAL_HOSTS = {
    "1e04": "NVIDIA GeForce RTX 2080 Ti", "1db5": "Tesla V100-SXM2-32GB",
    "1db6": "Tesla V100-PCIE-32GB", "1df6": "Tesla V100S-PCIE-32GB", "233b": "NVIDIA H200 NVL",
    "2237": "NVIDIA A10G", "2216": "NVIDIA GeForce RTX 3080", "220a": "NVIDIA GeForce RTX 3080",
    "2685": "NVIDIA GeForce RTX 4090 D", "2321": "NVIDIA H100 NVL",
    # 2339's nvidia-smi name is NVIDIA's "NVIDIA H100" (README 580+); 233d is in no NVIDIA
    # list read here: pci.ids names it and its chip (GH100) gives its branches ("chip").
    "2339": "NVIDIA H100", "233d": "NVIDIA H100 96GB",
}


@pytest.mark.parametrize(("devid", "name"), REAL_HOSTS.items(), ids=REAL_HOSTS)
def test_real_hosts_are_known(devid, name):
    model = find_gpu(f"10de:{devid}")
    assert model.name == name
    assert f"10de:{devid}" in find_gpu(name).pci_ids


@pytest.mark.parametrize(("text", "name"), [
    ("GeForce RTX 4090", "NVIDIA GeForce RTX 4090"),
    ("nvidia geforce rtx 4090", "NVIDIA GeForce RTX 4090"),
    ("AD102 [GeForce RTX 4090]", "NVIDIA GeForce RTX 4090"),
    ("H200 SXM 141GB", "NVIDIA H200"),
    ("GB100 [B200]", "NVIDIA B200"),
    ("10de:2335 10de:18be", "NVIDIA H200"),
    ("Tesla V100 SXM2 32GB", "Tesla V100-SXM2-32GB"),
    ("NVIDIA GeForce RTX 2070 SUPER", "NVIDIA GeForce RTX 2070 SUPER"),
])
def test_names_as_tools_print_them(text, name):
    assert find_gpu(text).name == name


def test_support_is_per_device_id_and_branch():
    """H200 (10de:2335) first appears in 550 (550.40.65 in the README; absent from 535's
    supported-gpus.json, nvidia-detect lists and the 535.288.01 README); H100 (2330) is in
    535; B200 from 570.86.15; RTX PRO 6000 Blackwell (2bb1) from 570.123.07."""
    h200 = find_gpu("10de:2335")
    assert not h200.supports(535) and h200.first_branch() == (550, "550.40.65")
    assert find_gpu("10de:2330").supports(535)
    assert find_gpu("10de:2901").first_branch() == (570, "570.86.15")
    assert find_gpu("10de:2bb1").first_branch() == (570, "570.123.07")
    # Maxwell, Pascal and Volta end with R580 (carried from the 550 list by architecture).
    m40 = find_gpu("Tesla M40")
    assert m40.supports(580) and not m40.supports(590)
    assert dict(m40.branches)[580] == "arch"


def test_legacy_and_unknown_gpus_are_refused_with_the_reason():
    with pytest.raises(StackError) as legacy:
        find_gpu("10de:1004")  # GeForce GTX 780 (Kepler)
    assert legacy.value.constraint == "legacy_gpu" and "470" in str(legacy.value)
    with pytest.raises(StackError) as unknown:
        find_gpu("10de:ffff")
    assert unknown.value.constraint == "unknown_gpu"


def test_tensor_dtype_follows_the_tensor_cores():
    """Volta and Turing have FP16 tensor cores and no BF16 ones; BF16 from Ampere (sm_80)."""
    assert [find_gpu(n).tensor_dtype for n in ("Tesla V100-SXM2-16GB", "Tesla T4",
                                                "NVIDIA GeForce RTX 2080 Ti")] == ["float16"] * 3
    assert [find_gpu(n).tensor_dtype for n in ("NVIDIA A100-SXM4-40GB", "NVIDIA H200",
                                                "NVIDIA GeForce RTX 4090")] == ["bfloat16"] * 3
    assert find_gpu("Tesla T4").tensor_tflops == 65.0
    assert find_gpu("NVIDIA H200").tensor_tflops == 989.0


def test_cuda_minimum_drivers():
    """CUDA 13.2 needs >= 595.45.04 (its release notes); 13.3 >= 610.43.02."""
    assert CUDA_MIN_DRIVER["13.2"] == "595.45.04" and CUDA_MIN_DRIVER["13.3"] == "610.43.02"
    assert "12.7" not in CUDA_MIN_DRIVER


def _wheels(package: str) -> dict[str, list[str]]:
    return {version: tags.split(",") for pkg, version, tags, _ in rows("pypi-wheels.tsv")
            if pkg == package}


def test_framework_tables_match_pypi():
    """Each build's Python range has wheels on PyPI, and each version is the newest patch."""
    torch = _wheels("torch")
    for build in TORCH_BUILDS:
        releases = [v for v in torch if v.startswith(build.version + ".")]
        assert build.newest == max(releases, key=version_key), build
        tags = torch[build.newest]
        for minor in range(int(build.python_min.split(".")[1]),
                           int(build.python_max.split(".")[1]) + 1):
            assert f"cp3{minor}" in tags, (build.newest, minor, tags)
    assert "cp310" not in torch["2.15.0"] and TORCH_BUILDS[-1].python_min == "3.11"
    tensorflow = _wheels("tensorflow")
    for build in TENSORFLOW_BUILDS:
        minor = ".".join(build.version.split(".")[:2])
        releases = [v for v in tensorflow if v.startswith(minor + ".")]
        assert build.version == max(releases, key=version_key), build
        for py in range(int(build.python_min.split(".")[1]),
                        int(build.python_max.split(".")[1]) + 1):
            assert f"cp3{py}" in tensorflow[build.version], (build.version, py)


def test_cuda_wheel_majors_are_told_apart():
    """verify's one-major check: CUDA 12 wheels (TensorFlow) beside torch's CUDA 13 ones."""
    from dlws.verify.test_frameworks import cuda_wheel_majors

    mixed = {"nvidia-cublas-cu12": "12.9.1.4", "nvidia-nccl-cu12": "2.27.7",
             "nvidia-nccl-cu13": "2.28.9", "nvidia-cuda-runtime": "13.0.96", "numpy": "2.4.6"}
    assert cuda_wheel_majors(mixed) == {
        12: ["nvidia-cublas-cu12", "nvidia-nccl-cu12"],
        13: ["nvidia-cuda-runtime 13.0.96", "nvidia-nccl-cu13"]}
    assert set(cuda_wheel_majors({"nvidia-cublas-cu12": "12.9.1.4"})) == {12}


def test_torch_aarch64_builds_are_pypis_wheels():
    """TORCH_PYPI_AARCH64 is what each release's PyPI aarch64 wheel METADATA says (the extract
    names each wheel and its sha256), for every torch release in the table."""
    from dlws.stack.table import TORCH_BUILDS, TORCH_PYPI_AARCH64

    read = {}
    for release, wheel, sha256, build, evidence in rows("pypi-torch-aarch64.tsv"):
        assert wheel.startswith(f"torch-{release}") and "aarch64" in wheel, wheel
        assert len(sha256) == 64, (wheel, sha256)
        # cpu: every CUDA requirement is for x86_64 only; cuXYZ: cuda-toolkit X.Y on Linux.
        if build == "cpu":
            assert 'platform_machine == "x86_64"' in evidence, evidence
        else:
            assert f"cuda-toolkit=={build[2:-1]}.{build[-1]}." in evidence, evidence
        read[release] = build
    assert read == TORCH_PYPI_AARCH64
    assert set(read) == {b.version for b in TORCH_BUILDS}
