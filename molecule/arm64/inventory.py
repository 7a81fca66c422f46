"""Molecule `arm64`: one bare arm64 Debian 12 container under qemu-user-static, CPU profile."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.sandbox.data import controller_data  # noqa: E402

# The controller's wheelhouse holds an x86_64 torch wheel: an aarch64 host takes PyPI's own
# aarch64 wheels instead (the plan's torch, a CPU build there), hash-locked for aarch64.
DATA = {key: value for key, value in controller_data().items()
        if key not in ("python_env_wheelhouse", "frameworks_torch")}

molecule = [("@docker/dlws-molecule-arm64", {**DATA, "gpu_count": 0})]
