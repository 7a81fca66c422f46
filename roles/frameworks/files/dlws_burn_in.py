"""dlws-burn-in: hold every GPU, the CPUs, memory and the data disk under load; judge the bars."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

PASS, FAILED, COULD_NOT_RUN = 0, 1, 2
STATE_DIR = Path("/var/lib/dlws/burn-in")
# NVML clock event reasons that mean the card slowed itself to protect itself: thermal
# slowdown (software or hardware) and the power brake (nvml.h, nvmlClocksEventReason*; the
# values are the same in nvidia-ml-py's pynvml). The software power cap is the card working at
# its power limit, as a matmul load should; it is recorded, not counted.
HW_SLOWDOWN, SW_THERMAL, HW_THERMAL, HW_POWER_BRAKE = 0x8, 0x20, 0x40, 0x80
BRAKES = {HW_SLOWDOWN: "hw_slowdown", SW_THERMAL: "sw_thermal", HW_THERMAL: "hw_thermal",
          HW_POWER_BRAKE: "hw_power_brake"}
BRAKE_MASK = HW_SLOWDOWN | SW_THERMAL | HW_THERMAL | HW_POWER_BRAKE
# Bars: the verify_burn_in_* keys of the same name pass these.
BAR_THROTTLE = "verify_burn_in_max_throttle_fraction"
BAR_CLOCK = "verify_burn_in_min_clock_fraction"
BAR_ERRORS = "no new Xid or ECC errors"
BAR_STRESSORS = "no stressor errors"
# stress-ng marks a stressor's own failure with "fail:" and its run with "error:" (0.15+).
STRESS_NG_FAILURE = (" fail: ", " error: ", " FAULTY")
GPU_BURN, GPU_BURN_PTX = "/usr/sbin/gpu-burn", "/usr/share/gpu-burn/compare.ptx"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- the load --------------------------------------------------------------------------------

def gpu_load_main(index: int, seconds: float) -> int:
    """One GPU under a bf16 matmul loop in PyTorch until `seconds` have passed."""
    import torch

    device = torch.device(f"cuda:{index}")
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    deadline, loops = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        for _ in range(20):
            a @ b
        torch.cuda.synchronize(device)
        loops += 20
    print(json.dumps({"gpu": index, "matmuls": loops}))
    return 0


def stressors(seconds: int, data_dir: str, disk_mib: int, memory_share: float,
              gpus: int, gpu_load: str) -> list[tuple[str, list[str]]]:
    """The commands that make the load: stress-ng for CPU, memory and the data disk (with
    --verify, so a wrong result is an error), and one matmul loop per GPU."""
    stress = shutil.which("stress-ng") or "stress-ng"
    common = ["--timeout", f"{seconds}s", "--verify", "--metrics-brief"]
    commands = [
        ("cpu", [stress, "--cpu", "0", "--cpu-method", "all", *common]),
        ("memory", [stress, "--vm", "1", "--vm-bytes", f"{max(1, int(memory_share * 100))}%",
                    *common]),
        ("disk", [stress, "--hdd", "1", "--hdd-bytes", f"{disk_mib}M", "--temp-path", data_dir,
                  *common]),
    ]
    if gpus and gpu_load == "gpu-burn":
        # Debian's gpu-burn (non-free, 0+git20240115+ds-5 in trixie; its man page): one process
        # loads every GPU for SECONDS; its compare kernel is named, since the default is
        # compare.ptx in the working directory; a GPU whose results differ prints FAULTY.
        commands.append(("gpu", [GPU_BURN, "-c", GPU_BURN_PTX, "-tc", str(seconds)]))
    elif gpus:
        for index in range(gpus):
            commands.append((f"gpu{index}", [sys.executable, os.path.abspath(__file__),
                                             "--gpu-load-worker", str(index),
                                             "--seconds", str(seconds)]))
    return commands


def stressor_errors(name: str, rc: int | None, output: str) -> list[str]:
    """A stressor's failures from its exit status and output (stress-ng's fail/error lines)."""
    errors = [line.strip() for line in output.splitlines()
              if any(mark in f" {line.strip()} " for mark in STRESS_NG_FAILURE)
              and "successful run" not in line]
    if rc not in (0, None) and not errors:
        errors.append(f"{name} exited with status {rc}: {output.strip()[-300:]}")
    return errors


# -- the readings ----------------------------------------------------------------------------

def cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies from /proc/stat's first line."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


class Nvml:
    """Every GPU's readings through NVML (nvidia-ml-py), and its Xid events as they come."""

    def __init__(self):
        import pynvml

        self.nv = pynvml
        pynvml.nvmlInit()
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i)
                        for i in range(pynvml.nvmlDeviceGetCount())]
        self.events = pynvml.nvmlEventSetCreate()
        for handle in self.handles:
            # A card without event support gives no Xid events (the kernel log still has them).
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlDeviceRegisterEvents(handle, pynvml.nvmlEventTypeXidCriticalError,
                                                self.events)

    def _try(self, fn, *args):
        try:
            return fn(*args)
        except self.nv.NVMLError:
            return None

    def describe(self) -> list[dict]:
        nv = self.nv
        out = []
        for index, handle in enumerate(self.handles):
            limit = self._try(nv.nvmlDeviceGetEnforcedPowerLimit, handle)
            out.append({"index": index, "name": self._try(nv.nvmlDeviceGetName, handle),
                        "max_sm_clock_mhz": self._try(nv.nvmlDeviceGetMaxClockInfo, handle,
                                                      nv.NVML_CLOCK_SM),
                        "power_limit_w": round(limit / 1000, 1) if limit else None,
                        "ecc_start": self.ecc(handle)})
        return out

    def ecc(self, handle) -> dict:
        nv = self.nv
        return {kind: self._try(nv.nvmlDeviceGetTotalEccErrors, handle, code, nv.NVML_VOLATILE_ECC)
                for kind, code in (("corrected", nv.NVML_MEMORY_ERROR_TYPE_CORRECTED),
                                   ("uncorrected", nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED))}

    def sample(self) -> list[dict]:
        nv = self.nv
        out = []
        for handle in self.handles:
            power = self._try(nv.nvmlDeviceGetPowerUsage, handle)
            out.append({
                "temperature_c": self._try(nv.nvmlDeviceGetTemperature, handle,
                                           nv.NVML_TEMPERATURE_GPU),
                "sm_clock_mhz": self._try(nv.nvmlDeviceGetClockInfo, handle, nv.NVML_CLOCK_SM),
                "power_w": round(power / 1000, 1) if power is not None else None,
                # (..ClocksEventReasons since R535; ..ClocksThrottleReasons before it)
                "reasons": self._try(getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons",
                                             nv.nvmlDeviceGetCurrentClocksThrottleReasons),
                                     handle),
            })
        return out

    def xids(self) -> list[dict]:
        """Xid events waiting now (no wait)."""
        found = []
        while True:
            try:
                event = self.nv.nvmlEventSetWait(self.events, 0)
            except self.nv.NVMLError:
                return found
            index = self._try(self.nv.nvmlDeviceGetIndex, event.device)
            found.append({"gpu": index, "xid": int(event.eventData), "at": _now()})

    def close(self) -> None:
        self._try(self.nv.nvmlEventSetFree, self.events)
        self._try(self.nv.nvmlShutdown)


def open_nvml(required: bool) -> tuple[Nvml | None, str | None]:
    try:
        nvml = Nvml()
    except Exception as error:  # no pynvml, no driver, no GPU: said, then judged by the caller
        return None, f"NVML unavailable: {type(error).__name__}: {error}"
    if required and not nvml.handles:
        nvml.close()
        return None, "NVML sees no GPU"
    return nvml, None


# -- the bars --------------------------------------------------------------------------------

def evaluate(document: dict, max_throttle: float, min_clock: float) -> list[dict]:
    """Each bar's verdict on a finished burn-in document (pure: tested on recorded samples)."""
    verdicts = []
    for gpu in document.get("gpus", []):
        samples = gpu["samples"]
        reasons = [r for r in samples["reasons"] if r is not None]
        braked = [r & BRAKE_MASK for r in reasons]
        share = sum(1 for r in braked if r) / len(reasons) if reasons else 0.0
        seen = sorted({name for r in braked for bit, name in BRAKES.items() if r & bit})
        label = f"GPU {gpu['index']} ({gpu.get('name')})"
        verdicts.append({
            "bar": BAR_THROTTLE, "gpu": gpu["index"], "ok": share <= max_throttle,
            "value": round(share, 4),
            "detail": f"{label}: thermal/power-brake throttled {share:.1%} of "
                      f"{len(reasons)} s ({', '.join(seen) or 'none'}); at most "
                      f"{max_throttle:.1%} allowed"})
        clocks = sorted(c for c in samples["sm_clock_mhz"] if c is not None)
        top = gpu.get("max_sm_clock_mhz")
        if clocks and top:
            median = clocks[len(clocks) // 2]
            verdicts.append({
                "bar": BAR_CLOCK, "gpu": gpu["index"], "ok": median >= min_clock * top,
                "value": round(median / top, 3),
                "detail": f"{label}: median SM clock {median} MHz under load, "
                          f"{median / top:.0%} of its {top} MHz maximum; at least "
                          f"{min_clock:.0%} required"})
        else:
            verdicts.append({"bar": BAR_CLOCK, "gpu": gpu["index"], "ok": False,
                             "detail": f"{label}: no SM clock readings"})
        start, end = gpu.get("ecc_start") or {}, gpu.get("ecc_end") or {}
        new_ecc = {k: (end.get(k) or 0) - (start.get(k) or 0) for k in ("corrected",
                                                                         "uncorrected")}
        xids = [x for x in document.get("xid_events", []) if x.get("gpu") in (gpu["index"], None)]
        problems = [f"{n} new {k} ECC errors" for k, n in new_ecc.items() if n > 0]
        problems += [f"Xid {x['xid']} at {x['at']}" for x in xids]
        verdicts.append({"bar": BAR_ERRORS, "gpu": gpu["index"], "ok": not problems,
                         "detail": f"{label}: " + ("; ".join(problems) or
                                                   "no new Xid or ECC error")})
    for run in document.get("stressors", []):
        verdicts.append({"bar": BAR_STRESSORS, "stressor": run["name"], "ok": not run["errors"],
                         "detail": f"{run['name']}: " + ("; ".join(run["errors"])[:600] or
                                                          "no error")})
    if document.get("gpu_error"):
        verdicts.append({"bar": "GPU readings", "ok": False, "detail": document["gpu_error"]})
    return verdicts


# -- the run ---------------------------------------------------------------------------------

def progress_line(now: float, seconds: int, cpu: dict, gpus: list[dict], xids: int,
                  exited: dict[str, int]) -> str:
    """One line a minute for a person: time, CPU busy, each GPU's latest temperature, SM clock
    and power, Xid events and stressors that stopped with an error so far."""
    window = cpu["busy_percent"][-60:]
    parts = [f"burn-in {now / 60:.0f}/{seconds / 60:.0f} min",
             f"cpu {sum(window) / max(len(window), 1):.0f}% busy"]
    for gpu in gpus:
        samples = gpu["samples"]
        if samples["t"]:
            parts.append(f"gpu{gpu['index']} {samples['temperature_c'][-1]} C "
                         f"{samples['sm_clock_mhz'][-1]} MHz {samples['power_w'][-1]} W")
    errors = [f"{name} exited {rc}" for name, rc in sorted(exited.items()) if rc]
    parts.append(f"xid events {xids}")
    parts.append("errors: " + ", ".join(errors) if errors else "no errors")
    return "; ".join(parts)


def burn_in(args: argparse.Namespace) -> dict:
    seconds, started = max(1, int(args.minutes * 60)), _now()
    # A host declared without GPUs (gpu_count = 0) gets the CPU, memory and disk parts only.
    nvml, gpu_error = open_nvml(required=True) if args.gpus > 0 else (None, None)
    gpus = nvml.describe() if nvml else []
    if args.gpus > 0 and len(gpus) != args.gpus:
        gpu_error = gpu_error or f"NVML sees {len(gpus)} GPUs, {args.gpus} declared"
    for gpu in gpus:
        gpu["samples"] = {"t": [], "temperature_c": [], "sm_clock_mhz": [], "power_w": [],
                          "reasons": [], "brake": []}
    gpu_load = args.gpu_load
    if gpu_load == "auto":
        gpu_load = "gpu-burn" if os.path.exists(GPU_BURN) and not _has_torch() else "torch"
    commands = stressors(seconds, args.data_dir, args.disk_mib, args.memory_share,
                         len(gpus), gpu_load)
    logs = {name: tempfile.TemporaryFile("w+") for name, _ in commands}  # noqa: SIM115
    procs = {}
    for name, command in commands:
        try:
            # stress-ng wants a writable working directory; only the disk soak uses the data dir.
            procs[name] = subprocess.Popen(command, stdout=logs[name], stderr=subprocess.STDOUT,
                                           cwd=tempfile.gettempdir(), start_new_session=True)
        except OSError as error:
            procs[name] = None
            logs[name].write(f"error: could not start {command[0]}: {error}\n")
    cpu = {"t": [], "busy_percent": []}
    xid_events: list[dict] = []
    start = time.monotonic()
    last = cpu_times()
    next_line = args.progress_every
    try:
        while time.monotonic() - start < seconds:
            time.sleep(1.0)
            now = round(time.monotonic() - start, 1)
            busy, total = cpu_times()
            cpu["t"].append(now)
            cpu["busy_percent"].append(round(100 * (busy - last[0]) / max(total - last[1], 1), 1))
            last = (busy, total)
            if nvml:
                for gpu, reading in zip(gpus, nvml.sample(), strict=True):
                    samples = gpu["samples"]
                    samples["t"].append(now)
                    for key in ("temperature_c", "sm_clock_mhz", "power_w", "reasons"):
                        samples[key].append(reading[key])
                    samples["brake"].append(int(bool((reading["reasons"] or 0) & BRAKE_MASK)))
                xid_events += nvml.xids()
            if now >= next_line:
                next_line += args.progress_every
                exited = {name: proc.poll() for name, proc in procs.items() if proc is not None
                          and proc.poll() is not None}
                print(progress_line(now, seconds, cpu, gpus, len(xid_events), exited),
                      file=sys.stderr, flush=True)
    finally:
        runs = []
        for name, _ in commands:
            proc = procs[name]
            rc = None
            if proc is not None:
                try:
                    rc = proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    rc = proc.wait()
                    logs[name].write("error: still running 60 s after its time; killed\n")
            logs[name].seek(0)
            output = logs[name].read()
            runs.append({"name": name, "command": " ".join(dict(commands)[name]), "rc": rc,
                         "errors": stressor_errors(name, rc, output),
                         "output_tail": output[-1500:]})
        if nvml:
            for gpu in gpus:
                gpu["ecc_end"] = nvml.ecc(nvml.handles[gpu["index"]])
            nvml.close()
    document = {"minutes": args.minutes, "started": started, "seconds": seconds,
                "data_dir": args.data_dir, "gpu_load": gpu_load if gpus else None,
                "gpus": gpus, "cpu": cpu, "xid_events": xid_events, "stressors": runs,
                "gpu_error": gpu_error,
                "bars": {BAR_THROTTLE: args.max_throttle_fraction,
                         BAR_CLOCK: args.min_clock_fraction}}
    return finish(document)


def finish(document: dict) -> dict:
    bars = document["bars"]
    document["verdicts"] = evaluate(document, bars[BAR_THROTTLE], bars[BAR_CLOCK])
    failed = [v for v in document["verdicts"] if not v["ok"]]
    document["status"] = "failed" if failed else "passed"
    return document


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dlws-burn-in", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs the host is declared with: that many must be seen and loaded")
    parser.add_argument("--gpu-load", choices=("auto", "torch", "gpu-burn"), default="auto",
                        help="the GPU load: the installed PyTorch's matmul loop, or Debian's "
                             "gpu-burn (auto: PyTorch where importable)")
    parser.add_argument("--data-dir", default="/var/tmp", help="the data disk to soak")
    parser.add_argument("--disk-mib", type=int, default=1024,
                        help="size of the disk soak's file, MiB")
    parser.add_argument("--memory-share", type=float, default=0.5,
                        help="share of memory the memory stressor holds")
    parser.add_argument("--max-throttle-fraction", type=float, default=0.02)
    parser.add_argument("--min-clock-fraction", type=float, default=0.75)
    parser.add_argument("--json", metavar="PATH", help="write the document as JSON ('-': stdout)")
    parser.add_argument("--progress-every", type=float, default=60.0, metavar="SECONDS",
                        help="a line on stderr this often: temperature, clocks, errors so far "
                             "(default 60)")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR,
                        help="where the last result is kept for the next report")
    parser.add_argument("--gpu-load-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.gpu_load_worker is not None:
        return gpu_load_main(args.gpu_load_worker, args.seconds)
    if shutil.which("stress-ng") is None:
        print("dlws-burn-in: stress-ng is not installed (apt-get install stress-ng)",
              file=sys.stderr)
        return COULD_NOT_RUN
    document = burn_in(args)
    text = json.dumps(document, indent=1)
    try:
        args.state_dir.mkdir(parents=True, exist_ok=True)
        (args.state_dir / "last.json").write_text(text + "\n")
    except OSError as error:
        print(f"note: could not keep the result in {args.state_dir}: {error}", file=sys.stderr)
    out = sys.stderr if args.json == "-" else sys.stdout
    for verdict in document["verdicts"]:
        print(f"{'ok  ' if verdict['ok'] else 'FAIL'} {verdict['bar']}: {verdict['detail']}",
              file=out)
    print(f"dlws-burn-in: {document['status']} ({args.minutes} min)", file=out)
    if args.json == "-":
        print(text)
    elif args.json:
        Path(args.json).write_text(text + "\n")
    return PASS if document["status"] == "passed" else FAILED


if __name__ == "__main__":
    sys.exit(main())
