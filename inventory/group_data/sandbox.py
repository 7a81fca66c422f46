"""Data of the `sandbox` group: what containers on this controller need (dlws/sandbox/data.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.sandbox.data import controller_data  # noqa: E402

globals().update(controller_data())
