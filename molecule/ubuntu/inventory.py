"""Molecule `ubuntu`: the official image of DLWS_UBUNTU_RELEASE (default 24.04), CPU profile."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.sandbox.data import controller_data  # noqa: E402

# The release molecule.yml names the container after (one scenario for the Ubuntu family).
RELEASES = ("22.04", "24.04")
RELEASE = os.environ.get("DLWS_UBUNTU_RELEASE", "24.04")
if RELEASE not in RELEASES:
    raise SystemExit(f"DLWS_UBUNTU_RELEASE={RELEASE!r}: use one of {', '.join(RELEASES)}")

_data = controller_data(python_tag="none")  # the controller's torch wheel is for CPython 3.11
molecule = [(f"@docker/dlws-molecule-ubuntu-{RELEASE}", {**_data, "gpu_count": 0})]
