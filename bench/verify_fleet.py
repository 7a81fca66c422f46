"""Verify time per host and for the fleet: all hosts in parallel (-n auto) vs one at a time.

Uses inventory/fleet_sandbox.py less its stopped host (dlws-sandbox and dlws-gpu-declared must
run; see that file). Prints figures only.

    .venv/bin/python bench/verify_fleet.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlws import report  # noqa: E402

HOSTS = {
    "@docker/dlws-sandbox": {"gpu_count": 0, "hardware_min_memory_gib": 1},
    "@docker/dlws-gpu-declared": {"gpu_count": 1, "gpu_model": "NVIDIA L4",
                                  "hardware_min_memory_gib": 1},
}


def run(hosts: dict[str, dict], workers: str | None, out: Path) -> tuple[float, report.Report]:
    """One verify run of ``hosts``; wall seconds and its report."""
    out.mkdir(parents=True, exist_ok=True)
    inventory = out / "inventory.py"
    # The sandbox group, so inventory/group_data/sandbox.py applies as in fleet_sandbox.py.
    inventory.write_text(f"sandbox = {[(name, data) for name, data in hosts.items()]!r}\n")
    group_data = out / "group_data"
    group_data.mkdir(exist_ok=True)
    (group_data / "all.py").write_text((ROOT / "inventory/group_data/all.py").read_text())
    (group_data / "sandbox.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
        "from dlws.sandbox.data import controller_data\nglobals().update(controller_data())\n")
    command = [sys.executable, "-m", "pytest", "verify", "-q", "-p", "no:cacheprovider",
               "--inventory", str(inventory), f"--junitxml={out / report.JUNIT}"]
    if workers:
        command += ["-n", workers]
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    return time.monotonic() - started, report.build(out / report.JUNIT, out / report.FACTS)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        print("one host at a time:")
        serial = 0.0
        for name, data in HOSTS.items():
            seconds, built = run({name: data}, None, tmp_path / f"serial-{len(name)}")
            serial += seconds
            host = built.hosts[0]
            print(f"  {name}: {seconds:.1f} s wall ({host.seconds:.1f} s in checks; "
                  f"{host.status})")
        print(f"  fleet, hosts one after another: {serial:.1f} s")
        seconds, built = run(HOSTS, "auto", tmp_path / "parallel")
        print("all hosts at once (-n auto):")
        for host in built.hosts:
            print(f"  {host.name}: {host.seconds:.1f} s in checks ({host.status})")
        print(f"  fleet: {seconds:.1f} s wall ({serial / seconds:.1f}x faster)")


if __name__ == "__main__":
    main()
