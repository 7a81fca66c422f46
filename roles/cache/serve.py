"""Run the fleet's package cache: `pyinfra CACHE_HOST roles/cache/serve.py`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.roles import cache  # noqa: E402

cache.serve()
