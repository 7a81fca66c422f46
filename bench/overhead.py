"""The full workstation on a fresh container: deploy vs the same packages installed by hand, then
the no-change rerun (target <= 10 s). Prints figures only.

    .venv/bin/python bench/overhead.py
"""

from __future__ import annotations

import json
import subprocess
import time

from common import WORK, deploy, inventory, remove, sh, start

from dlws.sandbox_data import CONTROLLER_BUNDLE, controller_data
from roles.base import ESSENTIAL_PACKAGES
from roles.facts import canonical

DEPLOYED, BY_HAND = "dlws-bench-deploy", "dlws-bench-hand"
DATA = {**controller_data(), "hardware_min_memory_gib": 1}
TOP_LEVEL = ("uv", "tensorflow-cpu", "torch", "numpy", "mlxtend")


def by_hand(versions: dict[str, str]) -> float:
    """apt-get install + uv pip install of what the deploy installed, timed from a bare image."""
    wheelhouse = DATA.get("python_env_wheelhouse")
    pins = " ".join(f"'{name}=={versions[name]}'" for name in TOP_LEVEL[1:-1])
    uv = "/opt/v/bin/uv pip install -q --python /opt/v/bin/python"
    started = time.monotonic()
    subprocess.run(["docker", "cp", CONTROLLER_BUNDLE, f"{BY_HAND}:/root/ca.crt"], check=True)
    if wheelhouse:
        subprocess.run(["docker", "cp", f"{wheelhouse}/.", f"{BY_HAND}:/root/wheels"], check=True)
    env = {"DEBIAN_FRONTEND": "noninteractive", "SSL_CERT_FILE": "/root/ca.crt",
           "PIP_CERT": "/root/ca.crt", "UV_LINK_MODE": "copy"}
    packages = " ".join([*ESSENTIAL_PACKAGES, "python3", "python3-venv", "python3-dev"])
    sh(BY_HAND, f"apt-get update -qq && apt-get install -y -qq --no-install-recommends {packages}"
                " >/dev/null", env=env)
    sh(BY_HAND, f"python3 -m venv /opt/v && /opt/v/bin/pip install -q 'uv=={versions['uv']}' "
                f"&& {uv} --find-links /root/wheels {pins} "
                f"&& {uv} --no-deps 'mlxtend=={versions['mlxtend']}'", env=env)
    return time.monotonic() - started


def main() -> None:
    start([DEPLOYED, BY_HAND])
    inv = inventory(WORK / "overhead.py", [DEPLOYED], DATA)
    seconds, rc, _, log = deploy(inv)
    if rc != 0:
        raise SystemExit(f"the deploy failed:\n{log}")
    print(f"deploy of the workstation on a fresh container: {seconds:.1f} s", flush=True)
    listing = sh(DEPLOYED, "/opt/dlws/venv/bin/python -c 'import importlib.metadata as m, json; "
                           "print(json.dumps({d.metadata[\"Name\"]: d.version "
                           "for d in m.distributions()}))'").stdout
    versions = {canonical(name): v for name, v in json.loads(listing).items()}
    hand = by_hand(versions)
    print(f"the same packages by hand (apt-get install + uv pip install): {hand:.1f} s")
    print(f"provisioning overhead: {seconds - hand:+.1f} s ({seconds / hand - 1:+.0%})")
    reruns = []
    for _ in range(3):
        rerun, rc, changed, log = deploy(inv)
        if rc != 0 or changed:
            raise SystemExit(f"the rerun failed or changed {changed}:\n{log}")
        reruns.append(rerun)
    print("no-change rerun of the whole workstation: "
          + ", ".join(f"{r:.1f} s" for r in reruns) + " (target <= 10 s)")
    remove([DEPLOYED, BY_HAND])


if __name__ == "__main__":
    main()
