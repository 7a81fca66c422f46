"""Molecule `default`: one bare Debian 12 container, CPU profile, with this controller's data."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.sandbox.data import controller_data  # noqa: E402

# Two lab users, so the user checks (GPU and lab groups, homes, the record of managed users) run
# here rather than pass vacuously.
molecule = [("@docker/dlws-molecule-default", {**controller_data(), "gpu_count": 0,
                                               "base_lab_users": ["ada", "grace"]})]
