"""The burn-in: every GPU, the CPUs, memory and the data disk under sustained load, held to the
declared bars (verify_burn_in_*); runs only when asked (dlws verify --burn-in-minutes N)."""

from __future__ import annotations

import logging
import math

import pytest

from .helpers import run_json

LOG = logging.getLogger("dlws.verify.burn_in")
# Points per series kept in the report (a 60-minute burn-in samples 3,600 seconds per series).
REPORT_POINTS = 240


def thin(document: dict, points: int = REPORT_POINTS) -> dict:
    """The burn-in document with each series cut to about `points`; a throttled second inside a
    dropped stretch marks the kept point, so no throttling disappears from the plot."""
    def cut(series: dict, flag: str | None = None) -> dict:
        n = len(series.get("t") or [])
        step = max(1, math.ceil(n / points))
        out = {key: values[::step] for key, values in series.items() if isinstance(values, list)}
        if flag and flag in series:
            out[flag] = [int(any(series[flag][i:i + step])) for i in range(0, n, step)]
        return out

    thinned = {k: v for k, v in document.items() if k not in ("gpus", "cpu", "stressors")}
    thinned["cpu"] = cut(document.get("cpu") or {})
    thinned["gpus"] = [{**gpu, "samples": cut(gpu.get("samples") or {}, "brake")}
                       for gpu in document.get("gpus") or []]
    thinned["stressors"] = [{k: v for k, v in run.items() if k != "output_tail"}
                            for run in document.get("stressors") or []]
    return thinned


def minute_logger(name: str):
    """Log each line a minute as the host prints it (`dlws burn-in` shows them live)."""

    def log(line: str) -> None:
        if line.startswith("burn-in "):
            LOG.info("%s %s", name, line)

    return log


def test_burn_in_holds_the_bars(host, target, request, record_fact):
    """A burn-in of the asked minutes meets every verify_burn_in_* bar."""
    minutes = request.config.getoption("burn_in_minutes")
    if not minutes:
        pytest.skip("no burn-in asked (dlws verify --burn-in-minutes N)")
    command = [target["frameworks_burn_in_path"], "--minutes", str(minutes),
               "--gpus", str(target["gpu_count"]), "--data-dir", target["hardware_data_dir"],
               "--disk-mib", str(target["verify_burn_in_disk_mib"]),
               "--memory-share", str(target["verify_burn_in_memory_fraction"]),
               "--max-throttle-fraction", str(target["verify_burn_in_max_throttle_fraction"]),
               "--min-clock-fraction", str(target["verify_burn_in_min_clock_fraction"]),
               "--json", "-"]
    rc, document, stderr = run_json(host, command, on_line=minute_logger(target.name))
    assert document.get("verdicts"), (
        f"dlws-burn-in did not run (exit {rc}): {stderr.strip()[-1500:]}")
    record_fact("burn_in", thin(document))
    failed = [v for v in document["verdicts"] if not v["ok"]]
    assert not failed, f"burn-in of {minutes} min failed its bars: " + "; ".join(
        f"{v['bar']}: {v['detail']}" for v in failed)
    assert rc == 0, f"dlws-burn-in exit {rc}: {stderr.strip()[-1500:]}"
