"""dlws-burn-in's bars on recorded readings: NVML series (constructed, no GPU here), stress-ng."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from dlws.verify.test_burn_in import thin

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "roles/frameworks/files/dlws_burn_in.py"
FIXTURES = Path(__file__).parents[2] / "fixtures" / "burn_in"


@pytest.fixture(scope="module")
def burn():
    spec = importlib.util.spec_from_file_location("dlws_burn_in", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def throttled():
    return json.loads((FIXTURES / "l4-thermal-throttle.json").read_text())


def failed(burn, document) -> dict[str, list[str]]:
    done = burn.finish(document)
    out: dict[str, list[str]] = {}
    for verdict in done["verdicts"]:
        if not verdict["ok"]:
            out.setdefault(verdict["bar"], []).append(verdict["detail"])
    return out


def test_thermal_throttling_fails_the_throttle_bar(burn, throttled):
    bars = failed(burn, throttled)
    assert list(bars) == ["verify_burn_in_max_throttle_fraction"], bars
    detail = bars["verify_burn_in_max_throttle_fraction"][0]
    assert "throttled 20.8% of 120 s" in detail and "hw_thermal" in detail, detail
    assert throttled["status"] == "failed"


def test_the_same_series_without_the_slowdown_passes(burn, throttled):
    # The software power cap (0x4) alone is the card at its limit: recorded, not counted.
    samples = throttled["gpus"][0]["samples"]
    samples["reasons"] = [r & 0x4 for r in samples["reasons"]]
    assert failed(burn, throttled) == {}
    assert throttled["status"] == "passed"


def test_a_share_of_throttling_under_the_bar_passes(burn, throttled):
    throttled["bars"]["verify_burn_in_max_throttle_fraction"] = 0.25
    assert failed(burn, throttled) == {}


def test_clocks_under_the_declared_share_fail(burn, throttled):
    throttled["bars"]["verify_burn_in_max_throttle_fraction"] = 1.0
    throttled["bars"]["verify_burn_in_min_clock_fraction"] = 0.95
    detail = failed(burn, throttled)["verify_burn_in_min_clock_fraction"][0]
    assert "median SM clock 1905 MHz" in detail and "93% of its 2040 MHz" in detail, detail


def test_new_ecc_errors_and_xids_fail(burn, throttled):
    throttled["bars"]["verify_burn_in_max_throttle_fraction"] = 1.0
    ecc = copy.deepcopy(throttled)
    ecc["gpus"][0]["ecc_end"]["corrected"] = 3
    assert "3 new corrected ECC errors" in failed(burn, ecc)["no new Xid or ECC errors"][0]
    xid = copy.deepcopy(throttled)
    xid["xid_events"] = [{"gpu": 0, "xid": 79, "at": "2026-11-29T13:01:00+00:00"}]
    assert "Xid 79" in failed(burn, xid)["no new Xid or ECC errors"][0]


def test_a_stressor_error_fails_naming_the_stressor(burn, throttled):
    # stress-ng's own output of a disk soak that could not write its data dir (recorded).
    output = (FIXTURES / "stress-ng-hdd-fail.txt").read_text()
    errors = burn.stressor_errors("disk", 2, output)
    assert errors == [
        "stress-ng: fail:  [7893] hdd: mkdir '/sys/tmp-stress-ng-hdd-7893-0' failed, errno=1 "
        "(Operation not permitted)",
        "stress-ng: error: [7892] process [7893] (hdd) terminated with an error, exit status=2 "
        "(stressor failed)"]
    throttled["bars"]["verify_burn_in_max_throttle_fraction"] = 1.0
    throttled["stressors"].append({"name": "disk", "rc": 2, "errors": errors})
    detail = failed(burn, throttled)["no stressor errors"]
    assert detail[0].startswith("disk: stress-ng: fail:"), detail


def test_a_stressor_that_exits_non_zero_without_saying_why_is_an_error(burn):
    assert burn.stressor_errors("gpu0", 1, "Traceback ...\nRuntimeError: CUDA error\n") == [
        "gpu0 exited with status 1: Traceback ...\nRuntimeError: CUDA error"]
    assert burn.stressor_errors("cpu", 0, "stress-ng: info:  successful run completed") == []


def test_declared_gpus_missing_from_nvml_fail(burn, throttled):
    throttled["gpus"], throttled["gpu_error"] = [], "NVML sees 0 GPUs, 2 declared"
    assert failed(burn, throttled) == {"GPU readings": ["NVML sees 0 GPUs, 2 declared"]}


def test_the_report_copy_keeps_every_throttled_stretch(throttled):
    kept = thin(throttled, points=12)
    samples = kept["gpus"][0]["samples"]
    assert len(samples["t"]) == 12 and sum(samples["brake"]) == 3  # 25 s in 10-second steps
    assert samples["brake"][-1] == 1 and samples["brake"][0] == 0


def test_recorded_cpu_burn_in_passes(burn):
    recorded = json.loads((FIXTURES / "cpu-sandbox.json").read_text())
    assert recorded["minutes"] == 2 and len(recorded["cpu"]["t"]) >= 100
    assert {s["name"] for s in recorded["stressors"]} == {"cpu", "memory", "disk"}
    assert failed(burn, recorded) == {}


def test_the_load_commands(burn):
    cpu_only = dict(burn.stressors(120, "/data/my disk", 512, 0.25, 0, "torch"))
    assert list(cpu_only) == ["cpu", "memory", "disk"]
    assert cpu_only["memory"][1:5] == ["--vm", "1", "--vm-bytes", "25%"]
    assert cpu_only["disk"][1:7] == ["--hdd", "1", "--hdd-bytes", "512M", "--temp-path",
                                     "/data/my disk"]
    assert all("--verify" in command for command in cpu_only.values())
    torch = dict(burn.stressors(120, "/var/tmp", 512, 0.5, 2, "torch"))
    assert torch["gpu1"][-4:] == ["--gpu-load-worker", "1", "--seconds", "120"]
    # Debian's gpu-burn: its compare kernel named (the default is ./compare.ptx).
    debian = dict(burn.stressors(120, "/var/tmp", 512, 0.5, 2, "gpu-burn"))
    assert debian["gpu"] == ["/usr/sbin/gpu-burn", "-c", "/usr/share/gpu-burn/compare.ptx",
                             "-tc", "120"]
    assert burn.stressor_errors("gpu", 0, "GPU 0: OK\nGPU 1: FAULTY\n") == ["GPU 1: FAULTY"]


def test_progress_line_names_temperature_clock_power_and_errors(burn, throttled):
    cpu = {"busy_percent": [50.0, 100.0]}
    line = burn.progress_line(120.4, 600, cpu, throttled["gpus"][:1], 0,
                              {"cpu": 0, "vm": 2})
    sample = throttled["gpus"][0]["samples"]
    assert line == (f"burn-in 2/10 min; cpu 75% busy; gpu{throttled['gpus'][0]['index']} "
                    f"{sample['temperature_c'][-1]} C {sample['sm_clock_mhz'][-1]} MHz "
                    f"{sample['power_w'][-1]} W; xid events 0; errors: vm exited 2")


def test_a_running_burn_in_says_where_it_is_every_interval(burn, monkeypatch, tmp_path, capsys):
    """The real sampling loop on this machine (no GPU), its load replaced by two short sleeps,
    one of which fails: a line each second, the failed one named once it has stopped."""
    monkeypatch.setattr(burn, "stressors", lambda *a, **k: [
        ("cpu", ["sleep", "5"]), ("vm", ["sh", "-c", "sleep 2.5; exit 3"])])
    args = burn.parse_args(["--minutes", str(5 / 60), "--progress-every", "1",
                            "--state-dir", str(tmp_path)])
    burn.burn_in(args)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("burn-in")]
    assert len(lines) >= 3, lines
    assert all("cpu " in line and "% busy" in line for line in lines)
    assert "errors: vm exited 3" in lines[-1] and "no errors" in lines[0]
