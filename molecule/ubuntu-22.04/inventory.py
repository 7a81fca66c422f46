"""Molecule `ubuntu-22.04`: the official image, CPU profile (this controller's CA bundle)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.sandbox.data import controller_data  # noqa: E402

_data = controller_data(python_tag="none")  # the controller's torch wheel is for CPython 3.11
molecule = [("@docker/dlws-molecule-ubuntu-2204", {**_data, "gpu_count": 0})]
