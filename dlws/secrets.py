"""Every file dlws writes that holds a secret, declared once: roles write it, verify checks it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The folder of the proxy settings and index credentials, and the group of lab members who may
# read them (the proxy and the index are the lab's; the hub's and the TLS key are root's alone).
SECRETS_DIR = "/etc/dlws"
LAB_GROUP = "dlws"
APT_PROXY_FILE = "/etc/apt/apt.conf.d/80dlws-proxy"
PROXY_ENV_FILE = f"{SECRETS_DIR}/proxy.env"
NETRC = f"{SECRETS_DIR}/netrc"
# In notebooks_state_dir / notebooks_config_dir (host data).
COOKIE_SECRET = "jupyterhub_cookie_secret"
PROXY_TOKEN = "proxy_token"
VERIFY_TOKEN = "verify_token"
TLS_KEY = "tls.key"


@dataclass(frozen=True)
class SecretFile:
    """A file holding a secret: where it is, who owns it, and the most its mode may allow."""

    name: str  # what it is, for messages and operation names
    path: str
    owner: str
    group: str
    mode: str  # octal, as pyinfra's files.put takes it ("640")
    role: str  # the role that writes it

    @property
    def mode_bits(self) -> int:
        return int(self.mode, 8)


def secret_files(data: Mapping[str, Any]) -> list[SecretFile]:
    """Every secret file for a host's data (a Target or pyinfra's host.data, read by key)."""
    state, config = _get(data, "notebooks_state_dir"), _get(data, "notebooks_config_dir")
    files = [
        SecretFile("apt proxy settings", APT_PROXY_FILE, "root", "root", "640", "base"),
        SecretFile("proxy settings", PROXY_ENV_FILE, "root", LAB_GROUP, "640", "base"),
        SecretFile("package index credentials", NETRC, "root", LAB_GROUP, "640", "python_env"),
    ]
    if state:
        files += [
            SecretFile("hub's cookie secret", f"{state}/{COOKIE_SECRET}", "root", "root", "600",
                       "notebooks"),
            SecretFile("proxy's API token", f"{state}/{PROXY_TOKEN}", "root", "root", "600",
                       "notebooks"),
            SecretFile("verify service's API token", f"{state}/{VERIFY_TOKEN}", "root", "root",
                       "600", "notebooks"),
        ]
    if config:
        files.append(SecretFile("hub's TLS key", f"{config}/{TLS_KEY}", "root", "root", "600",
                                "notebooks"))
    return files


def secret_file(data: Mapping[str, Any], path: str) -> SecretFile:
    """The declaration of the secret file at `path` (a role writes only what is declared)."""
    for declared in secret_files(data):
        if declared.path == path:
            return declared
    raise KeyError(f"{path} is not a declared secret file (dlws/secrets.py)")


def _get(data: Mapping[str, Any], key: str) -> Any:
    try:
        return data[key]
    except Exception:  # noqa: BLE001 - pyinfra's host.data is read by attribute
        return getattr(data, key, None)
