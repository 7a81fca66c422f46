"""The host's hardware against what the inventory declares: CPU, memory, data disk, GPUs."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from dlws.command import cmd
from dlws.facts.gpu import NvidiaModuleVersion
from dlws.facts.gpu_readings import (
    ECC_FIELDS,
    NOT_APPLICABLE,
    PCIE_FIELDS,
    PERSISTENCE_FIELDS,
    POWER_FIELDS,
    REMAPPED_ROWS_FIELDS,
    RETIRED_PAGES_FIELDS,
    THROTTLE_FIELDS,
    dd_read_mib_s,
    ecc_verdict,
    gpu_memory_gib,
    gpu_query,
    hardware_xids,
    meminfo_total_gib,
    parse_csv,
    pcie_verdict,
    persistence_verdict,
    power_verdict,
    remapped_rows_verdict,
    retired_pages_verdict,
    throttle_verdict,
)
from dlws.stack import find_gpu

from .helpers import require_gpus

GPU_QUERY = "index,name,memory.total,pci.device_id,driver_version"


def test_cpu_cores(host, target):
    """The host has at least hardware_min_cpu_cores CPU cores."""
    cores = int(host.check_output("nproc"))
    assert cores >= target["hardware_min_cpu_cores"], (
        f"{cores} CPU cores, declared at least {target['hardware_min_cpu_cores']}")


def test_memory(host, target):
    """The host has at least hardware_min_memory_gib of memory."""
    gib = meminfo_total_gib(host.file("/proc/meminfo").content_string)
    assert gib >= target["hardware_min_memory_gib"], (
        f"{gib:.1f} GiB of memory, declared at least {target['hardware_min_memory_gib']} GiB")


def test_data_disk_free_space(host, target):
    """hardware_data_dir has at least hardware_min_free_gib free."""
    path = target["hardware_data_dir"]
    out = host.run(cmd("df", "-Pk", "--", path))
    assert out.rc == 0, f"data disk {path}: {out.stderr.strip()}"
    free_gib = int(out.stdout.splitlines()[-1].split()[3]) / 2**20
    assert free_gib >= target["hardware_min_free_gib"], (
        f"{free_gib:.1f} GiB free on {path}, declared at least {target['hardware_min_free_gib']}")


def gpus_from_nvidia_smi(host) -> list[dict[str, str]]:
    """nvidia-smi's CSV query, one dict per GPU (fails the check when nvidia-smi fails)."""
    out = host.run(cmd("nvidia-smi", f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"))
    assert out.rc == 0, f"nvidia-smi failed (rc={out.rc}): {out.stderr.strip() or out.stdout}"
    rows = csv.reader(io.StringIO(out.stdout), skipinitialspace=True)
    return [dict(zip(GPU_QUERY.split(","), row, strict=True)) for row in rows if row]


def test_gpu_count(host, target):
    """nvidia-smi sees exactly gpu_count GPUs."""
    require_gpus(target)
    gpus = gpus_from_nvidia_smi(host)
    assert len(gpus) == target["gpu_count"], (
        f"{len(gpus)} GPUs found, {target['gpu_count']} declared: {gpus}")


def test_gpu_model(host, target):
    """Every GPU nvidia-smi names is the declared gpu_model."""
    require_gpus(target)
    declared = find_gpu(target["gpu_model"])
    for gpu in gpus_from_nvidia_smi(host):
        found = find_gpu(gpu["name"])
        assert found == declared, f"GPU {gpu['index']} is {gpu['name']}, declared {declared}"


def test_gpu_memory(host, target):
    """Each GPU's memory against gpu_min_memory_gib, read as its machine reports it: NVML's
    framebuffer, or on a GPU without one (GB10's unified memory, where NVML reports "[N/A]")
    the system's memory, which is the GPU's."""
    require_gpus(target)
    if target["gpu_min_memory_gib"] is None:
        pytest.skip("gpu_min_memory_gib not declared")
    system_gib = meminfo_total_gib(host.file("/proc/meminfo").content_string)
    for gpu in gpus_from_nvidia_smi(host):
        raw = gpu["memory.total"]
        reading = None if raw.strip() in NOT_APPLICABLE else raw
        unified = find_gpu(gpu["name"]).unified_memory
        try:
            gib = gpu_memory_gib(reading, unified, system_gib)
        except ValueError as error:
            pytest.fail(f"GPU {gpu['index']} ({gpu['name']}): {error} (nvidia-smi: {raw!r})")
        where = " (unified: the system's memory)" if unified else ""
        assert gib >= target["gpu_min_memory_gib"], (
            f"GPU {gpu['index']} has {gib:.1f} GiB{where}, declared "
            f"{target['gpu_min_memory_gib']}")


# Sequential read of the data disk: a file this size, read past the page cache.
READ_PROBE_MIB = 256


def test_data_disk_read_throughput(host, target, record_fact):
    """hardware_data_dir reads at least hardware_min_read_mib_s (uncached)."""
    path = target["hardware_data_dir"]
    # A name of its own per run: two verify runs (or one host under two names) may overlap.
    probe = f"{path}/.dlws-read-probe-{uuid.uuid4().hex[:12]}"
    # Random bytes, so a compressing filesystem (ZFS, btrfs) cannot make the read look faster.
    write = host.run(cmd("dd", "if=/dev/urandom", f"of={probe}", "bs=1M",
                         f"count={READ_PROBE_MIB}", "conv=fsync", "status=none"))
    try:
        assert write.rc == 0, f"cannot write {READ_PROBE_MIB} MiB to {path}: {write.stderr}"
        read = host.run(cmd("env", "LANG=C", "dd", f"if={probe}", "of=/dev/null", "bs=1M",
                            "iflag=direct"))
        method = "O_DIRECT"
        if read.rc != 0:
            # tmpfs and some overlays refuse O_DIRECT: drop only this file's pages
            # (posix_fadvise DONTNEED, GNU dd's nocache), not every cache of a shared machine.
            host.run(cmd("dd", f"if={probe}", "iflag=nocache", "count=0", "status=none"))
            read = host.run(cmd("env", "LANG=C", "dd", f"if={probe}", "of=/dev/null", "bs=1M"))
            method = "page cache dropped with posix_fadvise"
        assert read.rc == 0, f"cannot read back {probe}: {read.stderr}"
    finally:
        host.run(cmd("rm", "-f", "--", probe))
    mib_s = dd_read_mib_s(read.stderr)
    record_fact("data_disk.read_mib_s", round(mib_s, 1))
    assert mib_s >= target["hardware_min_read_mib_s"], (
        f"{path} reads {mib_s:.0f} MiB/s ({method}), declared at least "
        f"{target['hardware_min_read_mib_s']} MiB/s; dd: {read.stderr.strip()[-200:]}")


def query_gpus(host, fields: tuple[str, ...], query: str = "query-gpu") -> list[dict]:
    """One nvidia-smi CSV query as rows; nvidia-smi missing or failing fails the check."""
    out = host.run(gpu_query(fields, query))
    assert out.rc == 0, (f"nvidia-smi --{query} failed (rc={out.rc}): "
                         f"{(out.stderr or out.stdout).strip()[-500:]}")
    return parse_csv(out.stdout, fields)


# Each health reading of every GPU: (name, fields, nvidia-smi query, verdict(row, target)).
GPU_HEALTH = [
    ("pcie_link", PCIE_FIELDS, "query-gpu", lambda row, t: pcie_verdict(row)),
    ("ecc_uncorrected", ECC_FIELDS, "query-gpu", lambda row, t: ecc_verdict(row)),
    ("retired_pages", RETIRED_PAGES_FIELDS, "query-gpu",
     lambda row, t: retired_pages_verdict(row)),
    ("remapped_rows", REMAPPED_ROWS_FIELDS, "query-remapped-rows",
     lambda row, t: remapped_rows_verdict(row)),
    ("throttle_reasons", THROTTLE_FIELDS, "query-gpu", lambda row, t: throttle_verdict(row)),
    ("power_limit", POWER_FIELDS, "query-gpu",
     lambda row, t: power_verdict(row, t["gpu_min_power_limit_fraction"])),
    ("persistence_mode", PERSISTENCE_FIELDS, "query-gpu",
     lambda row, t: persistence_verdict(row, t["nvidia_driver_persistenced"])),
]


# Health readings that count events: their values are compared between runs.
COUNTED = ("ecc_uncorrected", "retired_pages", "remapped_rows")


@pytest.mark.parametrize(("reading", "fields", "query", "judge"), GPU_HEALTH,
                         ids=[h[0] for h in GPU_HEALTH])
def test_gpu_health(host, target, reading, fields, query, judge, record_fact):
    """Every GPU passes each health bar (PCIe link, throttling, ECC, retired pages, ...)."""
    require_gpus(target)
    rows = query_gpus(host, fields, query)
    assert rows, f"nvidia-smi reported no GPU for {reading}; {target['gpu_count']} declared"
    # Counters for the drift between runs (dlws/report/drift.py reports any change of gpu.N.*).
    if reading in COUNTED:
        for number, row in enumerate(rows):
            for name, value in row.items():
                if name not in ("index", "gpu_bus_id") and value is not None:
                    record_fact(f"gpu.{row.get('index') or number}.{name}", value)
    verdicts = [judge(row, target) for row in rows]
    problems = [f"GPU {v.gpu}: {v.problem}" for v in verdicts if not v.ok]
    assert not problems, "; ".join(problems)


def test_no_hardware_xid_in_kernel_log(host, target):
    """The kernel log since boot holds no hardware Xid error of an NVIDIA GPU."""
    require_gpus(target)
    out = host.run("LANG=C dmesg 2>&1 || LANG=C journalctl -k -b --no-pager -q 2>&1")
    assert out.rc == 0, ("the kernel log is not readable (run verify as root, or set "
                         f"kernel.dmesg_restrict=0): {out.stdout.strip()[-300:]}")
    xids = hardware_xids(out.stdout)
    assert not xids, "Xid errors since boot: " + "; ".join(
        f"{x.pci} Xid {x.code}: {x.text}" for x in xids[:10])


def test_nvidia_driver_loaded_at_planned_branch(target, plan, record_fact, read_fact):
    """The loaded NVIDIA kernel module is of the planned branch."""
    require_gpus(target)
    version = read_fact(NvidiaModuleVersion)
    assert version, ("no NVIDIA kernel module is loaded (/proc/driver/nvidia/version, "
                     "/sys/module/nvidia/version)")
    record_fact("nvidia_driver.version", version)
    if plan.driver.branch:
        assert version.split(".")[0] == plan.driver.branch, (
            f"driver {version} loaded, the plan says branch {plan.driver.branch}")
