"""Where dlws's own files are, from a checkout or an installed wheel, whatever the cwd."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# A checkout's root (in a wheel: site-packages, where nothing below is looked up).
CHECKOUT = Path(__file__).resolve().parent.parent


def _package_folder(package: str, checkout_folder: str) -> Path:
    """The folder of `package` where the wheel maps it into dlws, else the checkout's folder."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return CHECKOUT / checkout_folder


def deploy_file(name: str) -> Path:
    """A deploy file (workstation.py, plan.py, containers.py)."""
    return _package_folder("dlws.deploy", "deploy") / name


def verify_folder() -> Path:
    """The testinfra checks `dlws verify` runs."""
    return _package_folder("dlws.verify", "verify")


def examples_folder() -> Path:
    """The example inventories (sandbox, local, lab example, the Ansible reader)."""
    return _package_folder("dlws.examples", "inventory")


def pyinfra_config() -> Path:
    """The config file pyinfra loads (`--config`): the inventory checked before it connects."""
    return Path(__file__).resolve().parent / "pyinfra_config.py"


def in_checkout() -> bool:
    """True when dlws runs from a git checkout (tests/ and pyproject.toml beside dlws/)."""
    return (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "tests").is_dir()


def reports_folder(override: str | os.PathLike | None = None) -> Path:
    """Where runs are kept: --reports DIR, else DLWS_REPORTS, else ./reports (the cwd)."""
    return Path(override or os.environ.get("DLWS_REPORTS") or "reports").absolute()
