"""Host-data keys of the notebooks role: each with its default, type, check and doc."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlws.roles.base.defaults import declared_lab_users
from dlws.stack.services import KEY_DEFAULTS
from dlws.tls import pair_problem
from dlws.validate.domains import (
    Address,
    ControllerPath,
    HostPath,
    Number,
    controller_file,
    group_name,
    is_loopback,
    pem_certificates,
    port,
    version,
)
from dlws.validate.schema import Key, defaults

# A PyPI release number: ASCII digits, two to four parts.
RELEASE = version((), r"[0-9]{1,4}(\.[0-9]{1,4}){1,3}", "6.1.1")


def _plain_http_on_loopback(data: Mapping[str, Any]) -> str | None:
    # Plain HTTP carries PAM passwords in clear: only to a proxy on the same host.
    if data.get("notebooks_plain_http") and not is_loopback(str(data.get("notebooks_address"))):
        return (f"notebooks_plain_http is True but the hub listens on "
                f"{data.get('notebooks_address')!r}, so passwords would cross the network in "
                "clear; set notebooks_address = '127.0.0.1' (a TLS proxy on the host in front) "
                "or notebooks_plain_http = False")
    return None


def _needs_lab_users(data: Mapping[str, Any]) -> str | None:
    if data.get("notebooks_enabled") and not declared_lab_users(data):
        return ("the hub is for the lab's people and base_lab_users is empty; declare them in "
                "base_lab_users (or set notebooks_enabled = False)")
    return None


def _tls_pair(data: Mapping[str, Any]) -> str | None:
    if not data.get("notebooks_enabled"):
        return None
    return pair_problem(data.get("notebooks_tls_cert"), data.get("notebooks_tls_key"))


KEYS = [
    Key("notebooks_enabled", KEY_DEFAULTS["notebooks_enabled"], (bool,),
        "run JupyterHub for base_lab_users (PAM logins, notebooks_group only), with the managed "
        "environment as a kernel", check_data=_needs_lab_users),
    Key("notebooks_prefix", "/opt/dlws/hub", (str,),
        "the hub's own virtual environment (JupyterHub, JupyterLab), hash-locked like "
        "python_env's", check=HostPath(managed=True, example="/opt/dlws/hub")),
    Key("notebooks_jupyterhub_version", KEY_DEFAULTS["notebooks_jupyterhub_version"], (str,),
        "JupyterHub release (PyPI)",
        check=RELEASE),
    Key("notebooks_jupyterlab_version", KEY_DEFAULTS["notebooks_jupyterlab_version"], (str,),
        "JupyterLab release (PyPI)",
        check=RELEASE),
    Key("notebooks_ipykernel_version", KEY_DEFAULTS["notebooks_ipykernel_version"], (str,),
        "ipykernel added to the managed environment (python_env_prefix) so it runs as a kernel",
        check=RELEASE),
    Key("notebooks_group", "lab", (str,),
        "the only group whose members may log in; every base_lab_users member is put in it",
        check=group_name()),
    Key("notebooks_address", "0.0.0.0", (str,),
        "the address the hub listens on (an IP address of the host; no zone id)",
        check=Address(example="0.0.0.0"), check_data=_plain_http_on_loopback),
    Key("notebooks_port", 8443, (int,), "the hub's TCP port", check=port()),
    Key("notebooks_plain_http", False, (bool,),
        "serve plain HTTP instead of HTTPS: only behind a proxy that terminates TLS itself"),
    Key("notebooks_tls_cert", None, (str,),
        "controller path of the hub's PEM certificate (chain); None = a self-signed one made "
        "on the host (its SHA-256 fingerprint is printed by the deploy)",
        check=ControllerPath(pem_certificates), nullable=True,
        check_data=_tls_pair),
    Key("notebooks_tls_key", None, (str,),
        "controller path of the certificate's PEM private key (installed root-only, 0600)",
        check=ControllerPath(controller_file("TLS key")), nullable=True),
    Key("notebooks_tls_days", 825, (int,), "validity of a self-signed certificate, days",
        check=Number(1, 3650, unit="days")),
    Key("notebooks_config_dir", "/etc/dlws/hub", (str,),
        "the hub's configuration and certificate",
        check=HostPath(managed=True, under=("/etc/dlws",), example="/etc/dlws/hub")),
    Key("notebooks_state_dir", "/var/lib/dlws/hub", (str,),
        "the hub's database and secrets (root-only, 0700)",
        check=HostPath(managed=True, under=("/var/lib/dlws",), example="/var/lib/dlws/hub")),
]
DEFAULTS = defaults(KEYS)
