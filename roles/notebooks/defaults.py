"""Host-data keys of the notebooks role: each with its default, type, check and doc."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from dlws.tls import pair_problem
from dlws.validate.domains import (
    all_of,
    controller_file,
    host_path,
    number_range,
    pem_certificates,
    user_name,
)
from dlws.validate.schema import Key, defaults

_GROUP = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_VERSION = re.compile(r"^\d+(\.\d+){1,3}$")


def _address(value: Any) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "use an IP address of the host, e.g. '0.0.0.0' (all) or '192.0.2.10'"
    return None


_port = number_range(1, 65535)


def _group(value: Any) -> str | None:
    # Every lab user is put in this group: a system group (sudo, adm, docker, shadow...) would
    # hand them its powers.
    if not _GROUP.match(value):
        return "use a group name like 'lab'"
    return user_name(value)


def _version(value: Any) -> str | None:
    return None if _VERSION.match(value) else "use a release number like '6.1.1'"


def _needs_lab_users(data: Mapping[str, Any]) -> str | None:
    if data.get("notebooks_enabled") and not data.get("base_lab_users"):
        return ("the hub is for the lab's people and base_lab_users is empty; declare them in "
                "base_lab_users (or set notebooks_enabled = False)")
    return None


def _tls_pair(data: Mapping[str, Any]) -> str | None:
    if not data.get("notebooks_enabled"):
        return None
    return pair_problem(data.get("notebooks_tls_cert"), data.get("notebooks_tls_key"))


KEYS = [
    Key("notebooks_enabled", False, (bool,),
        "run JupyterHub for base_lab_users (PAM logins, notebooks_group only), with the managed "
        "environment as a kernel", check_data=_needs_lab_users),
    Key("notebooks_prefix", "/opt/dlws/hub", (str,),
        "the hub's own virtual environment (JupyterHub, JupyterLab), hash-locked like "
        "python_env's", check=host_path(managed=True)),
    Key("notebooks_jupyterhub_version", "6.1.1", (str,), "JupyterHub release (PyPI)",
        check=_version),
    Key("notebooks_jupyterlab_version", "4.6.6", (str,), "JupyterLab release (PyPI)",
        check=_version),
    Key("notebooks_ipykernel_version", "7.4.0", (str,),
        "ipykernel added to the managed environment (python_env_prefix) so it runs as a kernel",
        check=_version),
    Key("notebooks_group", "lab", (str,),
        "the only group whose members may log in; every base_lab_users member is put in it",
        check=_group),
    Key("notebooks_address", "0.0.0.0", (str,), "the address the hub listens on",
        check=_address),
    Key("notebooks_port", 8443, (int,), "the hub's TCP port", check=_port),
    Key("notebooks_plain_http", False, (bool,),
        "serve plain HTTP instead of HTTPS: only behind a proxy that terminates TLS itself"),
    Key("notebooks_tls_cert", None, (str,),
        "controller path of the hub's PEM certificate (chain); None = a self-signed one made "
        "on the host (its SHA-256 fingerprint is printed by the deploy)",
        check=all_of(controller_file("TLS certificate"), pem_certificates), nullable=True,
        check_data=_tls_pair),
    Key("notebooks_tls_key", None, (str,),
        "controller path of the certificate's PEM private key (installed root-only, 0600)",
        check=controller_file("TLS key"), nullable=True),
    Key("notebooks_tls_days", 825, (int,), "validity of a self-signed certificate, days",
        check=number_range(1, 3650, unit="days")),
    Key("notebooks_config_dir", "/etc/dlws/hub", (str,),
        "the hub's configuration and certificate", check=host_path(managed=True)),
    Key("notebooks_state_dir", "/var/lib/dlws/hub", (str,),
        "the hub's database and secrets (root-only, 0700)", check=host_path(managed=True)),
]
DEFAULTS = defaults(KEYS)
