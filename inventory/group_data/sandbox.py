"""Data of the `sandbox` group: what a container on this controller needs to reach PyPI."""

import configparser
import os
from pathlib import Path

# The controller's CA bundle: HTTPS from these machines passes a proxy whose CA the controller
# trusts but a bare container does not (pip: CERTIFICATE_VERIFY_FAILED).
_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
base_extra_ca_certs = [_BUNDLE] if os.path.exists(_BUNDLE) else []


def _controller_wheelhouse() -> str | None:
    """pip's find-links folder on the controller (it holds a CPU build of torch here)."""
    if os.environ.get("DLWS_WHEELHOUSE"):
        return os.environ["DLWS_WHEELHOUSE"]
    parser = configparser.ConfigParser()
    parser.read(["/etc/pip.conf", "/etc/xdg/pip/pip.conf", str(Path.home() / ".pip/pip.conf"),
                 str(Path.home() / ".config/pip/pip.conf")])
    for section in ("global", "install"):
        value = parser.get(section, "find-links", fallback="").split()
        for folder in value:
            if Path(folder).is_dir() and any(Path(folder).glob("torch-*.whl")):
                return folder
    return None


python_env_wheelhouse = _controller_wheelhouse()
# PyPI's default torch on Linux is a CUDA build of several GB: take the CPU build the
# wheelhouse holds, at its version.
_torch = sorted(Path(python_env_wheelhouse).glob("torch-*+cpu-*.whl")) if python_env_wheelhouse else []
if _torch:
    frameworks_torch = _torch[-1].name.split("-")[1].split("+")[0]
# The sandbox runs offline-safe: MNIST comes from Keras's cache or the bundled sample.
verify_offline = True
