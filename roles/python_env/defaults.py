"""Host-data keys of the python_env role: each with its default, type, check and doc."""

from __future__ import annotations

import re

from dlws.schema import Key, absolute_path, defaults, local_path_exists, str_list, url

KEYS = [
    Key("python_env_prefix", "/opt/dlws/venv", (str,),
        "the shared virtual environment; lab users run its bin/ or build their own with "
        "--system-site-packages on top of it", check=absolute_path),
    Key("python_env_python", "auto", (str,),
        "the Python of the environment: auto = the OS's python3 (Debian 12: 3.11, 13: 3.13, "
        "Ubuntu 22.04: 3.10, 24.04: 3.12); a version here must equal it",
        check=lambda v: None if v == "auto" or re.fullmatch(r"3\.\d+", v)
        else "use 'auto' or a version like '3.11'"),
    Key("python_env_installer", "uv", (str,),
        "uv (measured 8 s against pip's 36 s for tensorflow-cpu + torch) or pip",
        choices=("uv", "pip")),
    Key("python_env_uv_version", "0.13.9", (str,), "uv release installed into the environment"),
    Key("python_env_index_url", None, (str,), "a PyPI mirror for the host (default: PyPI)",
        check=url, nullable=True),
    Key("python_env_extra_index_urls", [], (list,), "more package indexes", check=url),
    Key("python_env_wheelhouse", None, (str,),
        "a directory of wheels on the controller, uploaded and used as --find-links "
        "(air-gapped labs)", check=local_path_exists("wheelhouse directory"), nullable=True),
    Key("python_env_wheelhouse_dir", "/opt/dlws/wheelhouse", (str,),
        "where the wheelhouse is uploaded on the host", check=absolute_path),
    Key("python_env_ca_bundle", "/etc/ssl/certs/ca-certificates.crt", (str,),
        "the host's CA bundle that pip and uv trust (includes base_extra_ca_certs)",
        check=absolute_path),
    Key("python_env_login_path", True, (bool,),
        "put the environment's bin/ on login shells' PATH (/etc/profile.d/dlws.sh)"),
    Key("python_env_extra_packages", [], (list,), "more pip requirements for the environment "
        "(installed with the frameworks, in one resolver run)", check=str_list),
    Key("python_env_require_hashes", True, (bool,),
        "install only files whose sha256 a lock in locks/ pins (`bin/dlws lock` makes them); "
        "False = pins by version only"),
    Key("python_env_lock_dir", "/opt/dlws/locks", (str,),
        "where the host's hash locks are uploaded", check=absolute_path),
]
DEFAULTS = defaults(KEYS)
