"""Host-data keys of the python_env role: each with its default, type, check and doc."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlws.stack.locks import INSTALLERS, UV
from dlws.validate.domains import (
    ControllerPath,
    HostPath,
    ListOf,
    PipRequirement,
    Url,
    version,
    wheelhouse,
)
from dlws.validate.schema import Key, defaults

# Indexes take credentials (https://USER:TOKEN@pypi.lab/simple): they are written only into
# root-only files (roles/python_env) and never onto a command line.
INDEX_URL = Url(("http", "https"), credentials=True)

KEYS = [
    Key("python_env_prefix", "/opt/dlws/venv", (str,),
        "the shared virtual environment; lab users run its bin/ or build their own with "
        "--system-site-packages on top of it; a folder of its own (never /usr, /opt, /tmp...)",
        check=HostPath(managed=True, example="/opt/dlws/venv")),
    Key("python_env_python", "auto", (str,),
        "the Python of the environment: auto = the OS's python3 (Debian 12: 3.11, 13: 3.13, "
        "Ubuntu 22.04: 3.10, 24.04: 3.12); a version here must equal it",
        check=version(("auto",), r"3\.[0-9]{1,2}", "3.11")),
    Key("python_env_installer", UV, (str,),
        "uv (measured 8 s against pip's 36 s for tensorflow-cpu + torch) or pip",
        choices=INSTALLERS),
    Key("python_env_uv_version", "0.13.9", (str,), "uv release installed into the environment",
        check=version((), r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", "0.13.9")),
    Key("python_env_index_url", None, (str,),
        "a PyPI mirror for the host (default: PyPI); may carry USER:PASSWORD@",
        check=INDEX_URL, nullable=True),
    Key("python_env_extra_index_urls", [], (list,), "more package indexes",
        check=ListOf(INDEX_URL, max_items=16)),
    Key("python_env_wheelhouse", None, (str,),
        "a directory of wheels on the controller, uploaded and used as --find-links "
        "(air-gapped labs); must hold *.whl files", check=ControllerPath(wheelhouse),
        nullable=True),
    Key("python_env_wheelhouse_dir", "/opt/dlws/wheelhouse", (str,),
        "where the wheelhouse is uploaded on the host",
        check=HostPath(managed=True, example="/opt/dlws/wheelhouse")),
    Key("python_env_ca_bundle", "/etc/ssl/certs/ca-certificates.crt", (str,),
        "the host's CA bundle that pip and uv trust (includes base_extra_ca_certs)",
        check=HostPath(under=("/etc/ssl/certs", "/etc/pki/tls/certs"),
                       example="/etc/ssl/certs/ca-certificates.crt")),
    Key("python_env_login_path", True, (bool,),
        "put the environment's bin/ on login shells' PATH (/etc/profile.d/dlws.sh)"),
    Key("python_env_extra_packages", [], (list,), "more pip requirements for the environment "
        "(installed with the frameworks, in one resolver run): NAME, NAME==VERSION, NAME>=VERSION",
        check=ListOf(PipRequirement())),
    Key("python_env_require_hashes", True, (bool,),
        "install only files whose sha256 a lock in locks/ pins (`bin/dlws lock` makes them); "
        "False = pins by version only"),
    Key("python_env_lock_dir", "/opt/dlws/locks", (str,),
        "where the host's hash locks are uploaded",
        check=HostPath(managed=True, example="/opt/dlws/locks")),
]
DEFAULTS = defaults(KEYS)


def environment_prefix(data: Mapping[str, Any]) -> str:
    """Where the shared environment lives (python_env_prefix), for the roles that put commands
    or kernels in it (frameworks, notebooks)."""
    return data.get("python_env_prefix") or DEFAULTS["python_env_prefix"]
