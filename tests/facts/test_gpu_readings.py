"""dlws/facts/gpu_readings.py on recorded nvidia-smi, kernel log, modinfo and dd outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlws.facts import gpu_readings as r

READINGS = Path(__file__).parents[1] / "fixtures" / "readings"

# Recorded `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` lines. H100: an SXM5
# board under load in a gen5 host; RTX 4090: an idle card (P8) in a gen4 x16 slot.
H100 = "h100-sxm5"
RTX_4090 = "rtx-4090"
RECORDED = {
    (H100, r.PCIE_FIELDS): "0, 00000000:18:00.0, P0, 5, 16, 5, 16\n",
    (RTX_4090, r.PCIE_FIELDS): "0, 00000000:01:00.0, P8, 1, 16, 4, 16\n",
    (H100, r.ECC_FIELDS): "0, Enabled, 0\n",
    (RTX_4090, r.ECC_FIELDS): "0, Disabled, [N/A]\n",
    (H100, r.RETIRED_PAGES_FIELDS): "0, [N/A], [N/A]\n",
    (RTX_4090, r.RETIRED_PAGES_FIELDS): "0, [N/A], [N/A]\n",
    (H100, r.REMAPPED_ROWS_FIELDS): "00000000:18:00.0, 0, 0, No, No\n",
    (RTX_4090, r.REMAPPED_ROWS_FIELDS): "00000000:01:00.0, [N/A], [N/A], [N/A], [N/A]\n",
    (H100, r.THROTTLE_FIELDS): "0, 0x0000000000000000\n",
    (RTX_4090, r.THROTTLE_FIELDS): "0, 0x0000000000000001\n",
    (H100, r.POWER_FIELDS): "0, 700.00, 700.00, 700.00\n",
    (RTX_4090, r.POWER_FIELDS): "0, 450.00, 450.00, 450.00\n",
    (H100, r.PERSISTENCE_FIELDS): "0, Enabled\n",
    (RTX_4090, r.PERSISTENCE_FIELDS): "0, Enabled\n",
}
# The same fields with one fault planted each: the verdict must flip.
BAD = {
    "pcie-gen1-x4-under-gen5-x16": (r.PCIE_FIELDS, "0, 00000000:18:00.0, P0, 1, 4, 5, 16\n"),
    "pcie-gen3-under-gen5-busy": (r.PCIE_FIELDS, "0, 00000000:18:00.0, P0, 3, 16, 5, 16\n"),
    "ecc-uncorrected-2": (r.ECC_FIELDS, "0, Enabled, 2\n"),
    "retired-page-pending": (r.RETIRED_PAGES_FIELDS, "0, Yes, 1\n"),
    "remap-failure": (r.REMAPPED_ROWS_FIELDS, "00000000:18:00.0, 0, 3, No, Yes\n"),
    "remap-pending": (r.REMAPPED_ROWS_FIELDS, "00000000:18:00.0, 0, 1, Yes, No\n"),
    "throttle-hw-slowdown": (r.THROTTLE_FIELDS, "0, 0x0000000000000008\n"),
    "throttle-hw-thermal": (r.THROTTLE_FIELDS, "0, 0x0000000000000040\n"),
    "power-capped-300w": (r.POWER_FIELDS, "0, 300.00, 450.00, 300.00\n"),
    "persistence-disabled": (r.PERSISTENCE_FIELDS, "0, Disabled\n"),
}
VERDICTS = {
    r.PCIE_FIELDS: r.pcie_verdict,
    r.ECC_FIELDS: r.ecc_verdict,
    r.RETIRED_PAGES_FIELDS: r.retired_pages_verdict,
    r.REMAPPED_ROWS_FIELDS: r.remapped_rows_verdict,
    r.THROTTLE_FIELDS: r.throttle_verdict,
    r.POWER_FIELDS: r.power_verdict,
    r.PERSISTENCE_FIELDS: lambda row: r.persistence_verdict(row, expected=True),
}


@pytest.mark.parametrize(("card", "fields"), list(RECORDED),
                         ids=[f"{card}-{fields[-1]}" for card, fields in RECORDED])
def test_recorded_healthy_reading_passes(card, fields):
    rows = r.parse_csv(RECORDED[card, fields], fields)
    assert len(rows) == 1
    verdict = VERDICTS[fields](rows[0])
    assert verdict.ok, verdict.problem


@pytest.mark.parametrize("case", list(BAD))
def test_bad_reading_fails(case):
    fields, text = BAD[case]
    verdict = VERDICTS[fields](r.parse_csv(text, fields)[0])
    assert not verdict.ok, f"{case} passed: {verdict.note}"


def test_not_applicable_values_become_none():
    row = r.parse_csv(RECORDED[RTX_4090, r.ECC_FIELDS], r.ECC_FIELDS)[0]
    assert row["ecc.errors.uncorrected.volatile.total"] is None
    assert "not reported" in r.ecc_verdict(row).note


def test_idle_link_below_its_generation_is_a_note_not_a_fault():
    row = r.parse_csv(RECORDED[RTX_4090, r.PCIE_FIELDS], r.PCIE_FIELDS)[0]
    assert r.pcie_verdict(row).ok and "idle" in r.pcie_verdict(row).note
    busy = {**row, "pstate": "P0"}
    assert "gen1 x16 (max gen4 x16)" in r.pcie_verdict(busy).problem


def test_narrow_link_named_in_the_problem():
    fields, text = BAD["pcie-gen1-x4-under-gen5-x16"]
    problem = r.pcie_verdict(r.parse_csv(text, fields)[0]).problem
    assert "gen1 x4 (max gen5 x16)" in problem and "lanes" in problem


def test_throttle_reasons_decoded():
    assert r.throttle_reasons(0x8 | 0x1) == ["GPU idle", "HW slowdown"]
    fields, text = BAD["throttle-hw-slowdown"]
    assert "HW slowdown" in r.throttle_verdict(r.parse_csv(text, fields)[0]).problem
    # A power cap the lab set is policy, not a fault.
    assert r.throttle_verdict({"index": "0", "clocks_throttle_reasons.active": "0x4"}).ok


def test_power_limit_fraction_allows_a_deliberate_cap():
    fields, text = BAD["power-capped-300w"]
    row = r.parse_csv(text, fields)[0]
    assert not r.power_verdict(row).ok
    assert r.power_verdict(row, min_fraction=0.6).ok


def test_multi_gpu_rows_and_row_shape_checked():
    text = "0, Enabled, 0\n1, Enabled, 0\n2, Enabled, 5\n3, Enabled, 0\n"
    verdicts = [r.ecc_verdict(row) for row in r.parse_csv(text, r.ECC_FIELDS)]
    assert [v.gpu for v in verdicts if not v.ok] == ["2"]
    with pytest.raises(ValueError, match="does not match the fields"):
        r.parse_csv("0, Enabled\n", r.ECC_FIELDS)


def test_xids_classified():
    xids = r.parse_xids((READINGS / "dmesg-xid.txt").read_text())
    assert [(x.pci, x.code) for x in xids] == [
        ("PCI:0000:18:00", 13), ("PCI:0000:18:00", 13), ("PCI:0000:3b:00", 79)]
    hardware = r.hardware_xids((READINGS / "dmesg-xid.txt").read_text())
    assert [x.code for x in hardware] == [79] and "fallen off the bus" in hardware[0].text
    # An MMU fault from a bad kernel (Xid 31) is the application's, not the card's.
    assert r.parse_xids((READINGS / "dmesg-clean.txt").read_text())[0].code == 31
    assert r.hardware_xids((READINGS / "dmesg-clean.txt").read_text()) == []


@pytest.mark.parametrize(("case", "flavour", "version"), [
    ("open-580", "open", "580.95.05"),
    ("proprietary-535", "proprietary", "535.216.01"),
])
def test_modinfo_and_proc_version(case, flavour, version):
    info = r.parse_modinfo((READINGS / f"modinfo-nvidia-{case}.txt").read_text())
    assert r.module_flavour(info["license"]) == flavour
    assert info["version"] == version
    proc = (READINGS / f"proc-driver-nvidia-version-{case}.txt").read_text()
    assert r.loaded_driver_version(proc) == version
    assert r.loaded_driver_version("") is None


def test_loaded_modules():
    proc = ("nvidia_uvm 1794048 0 - Live 0x0000000000000000 (POE)\n"
            "nouveau 2322432 1 - Live 0x0000000000000000\n")
    assert r.loaded_modules(proc) == {"nvidia_uvm", "nouveau"}


def test_dd_throughput():
    out = ("256+0 records in\n256+0 records out\n"
           "268435456 bytes (268 MB, 256 MiB) copied, 0.5 s, 537 MB/s\n")
    assert r.dd_read_mib_s(out) == pytest.approx(512.0)
    with pytest.raises(ValueError, match="no dd summary"):
        r.dd_read_mib_s("dd: failed to open 'x': Invalid argument\n")


def test_apt_sources_signed():
    good = {
        "/etc/apt/sources.list.d/debian.sources": (
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\n"
            "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"),
        "/etc/apt/sources.list.d/cuda.list": (
            "# NVIDIA\ndeb [arch=amd64 signed-by=/usr/share/keyrings/cuda.gpg] "
            "https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/ /\n"),
    }
    assert r.unsigned_apt_sources(good) == []
    bad = {
        "/etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n",
        "/etc/apt/sources.list.d/lab.list": "deb [trusted=yes] http://mirror.lab/debian bookworm\n",
        "/etc/apt/sources.list.d/x.sources": "Types: deb\nURIs: http://x\nSuites: s\nTrusted: yes",
        "/etc/apt/sources.list.d/off.sources": "Enabled: no\nTypes: deb\nURIs: http://off\n",
    }
    problems = r.unsigned_apt_sources(bad)
    assert len(problems) == 3, problems
    assert problems[0].startswith("/etc/apt/sources.list: deb http://deb.debian.org")
    assert "trusted=yes" in problems[1] and "Trusted: yes" in problems[2]


# GB10 (DGX Spark) has no framebuffer of its own: nvidia-smi's memory.total reads "[N/A]"
# (reports on NVIDIA's developer forum; no GB10 was at hand) and the GPU uses the system's
# 128 GB. A GH200 reports its HBM as its framebuffer. MemTotal of a 128 GB Spark-like host:
GB10_MEMINFO = "MemTotal:       128452284 kB\nMemFree:        120000000 kB\n"
GB10_ROW = "0, NVIDIA GB10, [N/A], 0x2E1210DE, 580.95.05\n"
GH200_ROW = "0, NVIDIA GH200 480GB, 97871, 0x234210DE, 580.95.05\n"
QUERY = ("index", "name", "memory.total", "pci.device_id", "driver_version")


def test_gb10_memory_is_the_systems_memory():
    from dlws.stack import find_gpu

    [row] = r.parse_csv(GB10_ROW, QUERY)
    model = find_gpu(row["name"])
    assert model.unified_memory and model.machines == ("aarch64",)
    gib = r.gpu_memory_gib(row["memory.total"], model.unified_memory,
                           r.meminfo_total_gib(GB10_MEMINFO))
    assert 122 < gib < 123  # 128452284 kB, not "too little GPU memory"


def test_a_framebuffer_gpu_is_read_from_nvml_and_a_missing_reading_is_a_fault():
    from dlws.stack import find_gpu

    [row] = r.parse_csv(GH200_ROW, QUERY)
    assert not find_gpu(row["name"]).unified_memory
    assert round(r.gpu_memory_gib(row["memory.total"], False, 500.0), 1) == 95.6
    with pytest.raises(ValueError, match="no memory.total for a GPU with its own framebuffer"):
        r.gpu_memory_gib(None, False, 500.0)
