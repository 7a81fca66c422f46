"""The full workstation on a fresh container: deploy vs the same packages installed by hand, then
the no-change rerun (target <= 10 s). Prints figures only.

The by-hand reference installs what the deploy installs, the same way: apt-get, then uv through
pip and the environment from the same hash locks (`--require-hashes`). It runs once before the
deploy and once after, in fresh containers: this network's upstream proxy serves a package
faster the second time it is fetched (measured: 42.8 s by hand before a deploy, 31.2 s after),
so a reference that always runs second flatters the reference.

    .venv/bin/python bench/overhead.py [--prefix dlws-bench]
"""

from __future__ import annotations

import argparse
import subprocess
import time

from common import WORK, deploy, inventory, remove, sh, start  # noqa: F401 (bench/all.py)

from dlws.roles import all_defaults
from dlws.roles.base import ARCHIVE_PACKAGES
from dlws.sandbox.data import CONTROLLER_BUNDLE, controller_data
from dlws.stack import HostFacts, derive
from dlws.stack.locks import environment_spec, uv_spec

DEPLOYED, BEFORE, AFTER = "dlws-bench-deploy", "dlws-bench-hand1", "dlws-bench-hand2"
DATA = {**controller_data(), "hardware_min_memory_gib": 1}


def locks() -> tuple[str, str]:
    """The uv and environment locks the deploy uses for DATA on a Debian 12 container (x86_64):
    the deploy's own derivation (dlws.stack.derive)."""
    data = {**all_defaults(), **DATA}
    plan = derive(data, HostFacts(os_id="debian", os_release="12", in_container=True))
    return str(uv_spec(data).path), str(environment_spec(plan, data).path)


def by_hand(name: str, cache: tuple[str, str] | None = None) -> tuple[float, dict[str, float]]:
    """apt-get install + pip install uv + uv pip install of the same locks, from a bare image:
    the seconds in all, and of each step.

    With `cache` (the fleet cache's apt proxy URL, the shared download folder mounted in the
    container), from that cache as the deploy takes from it (roles/cache): apt through the
    proxy, pip from the cache's wheel folder (`--no-index`), uv `--offline` from its cache."""
    uv_lock, env_lock = locks()
    wheelhouse = DATA.get("python_env_wheelhouse")
    started = time.monotonic()
    for src, dst in ((CONTROLLER_BUNDLE, "/root/ca.crt"), (uv_lock, "/root/uv.txt"),
                     (env_lock, "/root/env.txt")):
        subprocess.run(["docker", "cp", src, f"{name}:{dst}"], check=True)
    if wheelhouse:
        subprocess.run(["docker", "cp", f"{wheelhouse}/.", f"{name}:/root/wheels"], check=True)
    env = {"DEBIAN_FRONTEND": "noninteractive", "SSL_CERT_FILE": "/root/ca.crt",
           "PIP_CERT": "/root/ca.crt", "UV_LINK_MODE": "copy"}
    proxy = pip_from = uv_from = ""
    if cache:
        env.update(PROXY=cache[0], PIP_CACHE_DIR=f"{cache[1]}/pip", UV_CACHE_DIR=f"{cache[1]}/uv",
                   WHEELS=f"{cache[1]}/wheels")
        proxy = ("echo \"Acquire::http::Proxy \\\"$PROXY\\\";\" "
                 ">/etc/apt/apt.conf.d/01proxy && ")
        pip_from, uv_from = "--no-index --find-links \"$WHEELS\" ", "--offline "
    packages = " ".join(ARCHIVE_PACKAGES)
    steps = {"copy": time.monotonic() - started}
    sh(name, f"{proxy}apt-get update -qq && apt-get install -y -qq --no-install-recommends "
             f"{packages} >/dev/null", env=env)
    steps["apt"] = time.monotonic() - started - sum(steps.values())
    sh(name, f"python3 -m venv /opt/v && /opt/v/bin/pip install -q {pip_from}--require-hashes "
             "--no-deps -r /root/uv.txt && /opt/v/bin/uv pip install -q --python /opt/v/bin/python "
             f"--compile-bytecode {uv_from}"
             "--find-links /root/wheels --require-hashes --no-deps -r /root/env.txt", env=env)
    steps["venv"] = time.monotonic() - started - sum(steps.values())
    return time.monotonic() - started, {k: round(v, 1) for k, v in steps.items()}


def main() -> None:
    global DEPLOYED, BEFORE, AFTER
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", default="dlws-bench")
    prefix = parser.parse_args().prefix
    DEPLOYED, BEFORE, AFTER = f"{prefix}-deploy", f"{prefix}-hand1", f"{prefix}-hand2"
    start([BEFORE, DEPLOYED, AFTER])
    before, _ = by_hand(BEFORE)
    print(f"the same packages by hand, before the deploy: {before:.1f} s", flush=True)
    inv = inventory(WORK / "overhead.py", [DEPLOYED], DATA)
    seconds, rc, _, log = deploy(inv)
    if rc != 0:
        raise SystemExit(f"the deploy failed:\n{log}")
    print(f"deploy of the workstation on a fresh container: {seconds:.1f} s", flush=True)
    after, _ = by_hand(AFTER)
    print(f"the same packages by hand, after the deploy: {after:.1f} s", flush=True)
    hand = (before + after) / 2
    print(f"provisioning overhead against their mean: {seconds - hand:+.1f} s "
          f"({seconds / hand:.2f}x; {seconds / before:.2f}x and {seconds / after:.2f}x)")
    reruns = []
    for _ in range(3):
        rerun, rc, changed, log = deploy(inv)
        if rc != 0 or changed:
            raise SystemExit(f"the rerun failed or changed {changed}:\n{log}")
        reruns.append(rerun)
    print("no-change rerun of the whole workstation: "
          + ", ".join(f"{r:.1f} s" for r in reruns) + " (target <= 10 s)")
    remove([DEPLOYED, BEFORE, AFTER])


if __name__ == "__main__":
    main()
