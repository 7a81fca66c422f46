"""The host's hardware against what the inventory declares: CPU, memory, data disk, GPUs."""

from __future__ import annotations

import csv
import io

import pytest

from verify.conftest import require_gpus

GPU_QUERY = "index,name,memory.total,pci.device_id,driver_version"


def test_cpu_cores(host, target):
    cores = int(host.check_output("nproc"))
    assert cores >= target["hardware_min_cpu_cores"], (
        f"{cores} CPU cores, declared at least {target['hardware_min_cpu_cores']}")


def test_memory(host, target):
    meminfo = host.file("/proc/meminfo").content_string
    kib = int(next(line.split()[1] for line in meminfo.splitlines()
                   if line.startswith("MemTotal:")))
    gib = kib / 2**20
    assert gib >= target["hardware_min_memory_gib"], (
        f"{gib:.1f} GiB of memory, declared at least {target['hardware_min_memory_gib']} GiB")


def test_data_disk_free_space(host, target):
    path = target["hardware_data_dir"]
    out = host.run(f"df -Pk {path}")
    assert out.rc == 0, f"data disk {path}: {out.stderr.strip()}"
    free_gib = int(out.stdout.splitlines()[-1].split()[3]) / 2**20
    assert free_gib >= target["hardware_min_free_gib"], (
        f"{free_gib:.1f} GiB free on {path}, declared at least {target['hardware_min_free_gib']}")


def gpus_from_nvidia_smi(host) -> list[dict[str, str]]:
    """nvidia-smi's CSV query, one dict per GPU (fails the check when nvidia-smi fails)."""
    out = host.run(f"nvidia-smi --query-gpu={GPU_QUERY} --format=csv,noheader,nounits")
    assert out.rc == 0, f"nvidia-smi failed (rc={out.rc}): {out.stderr.strip() or out.stdout}"
    rows = csv.reader(io.StringIO(out.stdout), skipinitialspace=True)
    return [dict(zip(GPU_QUERY.split(","), row, strict=True)) for row in rows if row]


def test_gpu_count(host, target):
    require_gpus(target)
    gpus = gpus_from_nvidia_smi(host)
    assert len(gpus) == target["gpu_count"], (
        f"{len(gpus)} GPUs found, {target['gpu_count']} declared: {gpus}")


def test_gpu_model(host, target):
    require_gpus(target)
    from roles.stack import find_gpu

    declared = find_gpu(target["gpu_model"])
    for gpu in gpus_from_nvidia_smi(host):
        found = find_gpu(gpu["name"])
        assert found == declared, f"GPU {gpu['index']} is {gpu['name']}, declared {declared}"


def test_gpu_memory(host, target):
    require_gpus(target)
    if target["gpu_min_memory_gib"] is None:
        pytest.skip("gpu_min_memory_gib not declared")
    for gpu in gpus_from_nvidia_smi(host):
        gib = int(gpu["memory.total"]) / 1024
        assert gib >= target["gpu_min_memory_gib"], (
            f"GPU {gpu['index']} has {gib:.1f} GiB, declared {target['gpu_min_memory_gib']}")
