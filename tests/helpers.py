"""Shared steps of the tests that drive real containers: deploy with --json, verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def pyinfra_json(inventory: str, deploy: str = "deploy/workstation.py",
                 env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """Run a deploy; return its exit code, pyinfra's --json document and stderr."""
    out = subprocess.run(
        [str(BIN / "pyinfra"), "-y", "--json", inventory, deploy],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )
    try:
        document = json.loads(out.stdout)
    except json.JSONDecodeError:
        document = {}
    return out.returncode, document, out.stderr + out.stdout[-3000:]


def changed_operations(document: dict) -> list[str]:
    """Names of the operations that changed something on some host."""
    return [op["name"] for op in document["results"]["operations"] if op["success"]]


def run_verify(inventory: str, *args: str, env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pytest"), "verify", "--inventory", inventory, "-p", "no:cacheprovider",
         "-q", "-rfE", "--no-header", *args],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )
