"""Host data containers on this controller need: its CA bundle, wheelhouse, offline MNIST."""

from __future__ import annotations

import configparser
import os
from pathlib import Path
from typing import Any

# HTTPS from the controller's network may pass a proxy whose CA the controller trusts but a
# bare container does not (pip: CERTIFICATE_VERIFY_FAILED): hand the controller's bundle over.
CONTROLLER_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PIP_CONFIGS = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.pip/pip.conf",
               "~/.config/pip/pip.conf")


def controller_wheelhouse() -> str | None:
    """DLWS_WHEELHOUSE, else pip's find-links folder on the controller when it holds torch."""
    if os.environ.get("DLWS_WHEELHOUSE"):
        return os.environ["DLWS_WHEELHOUSE"]
    parser = configparser.ConfigParser()
    parser.read([os.path.expanduser(path) for path in PIP_CONFIGS])
    for section in ("global", "install"):
        for folder in parser.get(section, "find-links", fallback="").split():
            if Path(folder).is_dir() and any(Path(folder).glob("torch-*.whl")):
                return folder
    return None


def wheelhouse_torch(wheelhouse: str | None, python_tag: str = "cp311") -> str | None:
    """The version of the CPU torch wheel in the wheelhouse for `python_tag`, if any."""
    if not wheelhouse:
        return None
    wheels = sorted(Path(wheelhouse).glob(f"torch-*+cpu-{python_tag}-*.whl"))
    return wheels[-1].name.split("-")[1].split("+")[0] if wheels else None


def controller_data(python_tag: str = "cp311") -> dict[str, Any]:
    """Group data for containers this controller provisions (sandbox, tests, Molecule)."""
    data: dict[str, Any] = {
        "base_extra_ca_certs": [CONTROLLER_BUNDLE] if os.path.exists(CONTROLLER_BUNDLE) else [],
        # Offline-safe: MNIST from Keras's cache or the bundled 5,000-image sample.
        "verify_offline": True,
    }
    wheelhouse = controller_wheelhouse()
    if wheelhouse:
        data["python_env_wheelhouse"] = wheelhouse
    torch = wheelhouse_torch(wheelhouse, python_tag)
    if torch:
        # PyPI's default torch on Linux is a CUDA build of several GB: take the CPU build the
        # wheelhouse holds, at its version.
        data["frameworks_torch"] = torch
    return data
