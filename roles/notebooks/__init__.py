"""Notebooks role: JupyterHub for the lab, over HTTPS, with the managed environment as a kernel.

Optional (``notebooks_enabled``). JupyterHub and JupyterLab come from PyPI into a hash-locked
environment of their own (``notebooks_prefix``), not from Debian's ``jupyterhub`` package:
Debian 12 ships JupyterHub 3.0.0 and no JupyterLab at all, Ubuntu 22.04 has no ``jupyterhub``
package (unverified here: Ubuntu's archive is not reachable), so one locked set serves every
supported OS with the same versions. The proxy is the distribution's
``node-configurable-http-proxy`` (Debian 12: 4.5.3, the archive's package index).
"""

from __future__ import annotations

import html
import ipaddress
import json
from collections import Counter
from importlib.resources import files as package_files
from io import StringIO
from typing import Any

from pyinfra import host, logger
from pyinfra.api import DeployError, deploy
from pyinfra.facts.files import Directory, File
from pyinfra.operations import files, python, server, systemd

from dlws import unitfile
from dlws.command import cmd, sh
from dlws.plan import host_data, host_plan
from dlws.roles import base, python_env
from dlws.roles.base import _apt
from dlws.roles.base.defaults import declared_lab_users
from dlws.roles.notebooks.defaults import DEFAULTS, KEYS  # noqa: F401
from dlws.roles.python_env.defaults import environment_prefix
from dlws.secrets import COOKIE_SECRET, PROXY_TOKEN, TLS_KEY, VERIFY_TOKEN, secret_file
from dlws.stack import StackError, find_gpu
from dlws.stack.locks import hub_spec

SERVICE = "dlws-jupyterhub"
UNIT = f"/etc/systemd/system/{SERVICE}.service"
# ipykernel's own kernel spec in the hub's environment, which the deploy removes (verify's
# RECORD check of that environment is told so).
HIDDEN_KERNEL = "share/jupyter/kernels/python3"
KERNELS_DIR = "/usr/local/share/jupyter/kernels"  # searched for every user (jupyter --paths)
KERNEL_NAME = "dlws"
PROXY_PACKAGE = "node-configurable-http-proxy"
PROXY_COMMAND = "/usr/bin/configurable-http-proxy"
# Root-only files in notebooks_state_dir (declared with their modes in dlws/secrets.py): none
# of them is ever printed. VERIFY_TOKEN: the API token of the dlws-verify service.
CHECK_SCRIPT = "dlws-notebook-check"


def paths(data: Any) -> dict[str, str]:
    """Where the hub's files live on a host (from its data, or a Target's)."""
    config, state = data["notebooks_config_dir"], data["notebooks_state_dir"]
    return {
        "config": f"{config}/jupyterhub_config.py",
        "cert": f"{config}/tls.crt",
        "key": f"{config}/{TLS_KEY}",
        "cookie_secret": f"{state}/{COOKIE_SECRET}",
        "proxy_token": f"{state}/{PROXY_TOKEN}",
        "verify_token": f"{state}/{VERIFY_TOKEN}",
        "check": f"{data['notebooks_prefix']}/bin/{CHECK_SCRIPT}",
        "kernel": f"{KERNELS_DIR}/{KERNEL_NAME}/kernel.json",
    }


def url(data: Any) -> str:
    """The hub's address as its own host reaches it (a wildcard address means loopback)."""
    address = data["notebooks_address"]
    address = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)
    address = f"[{address}]" if ":" in address else address
    scheme = "http" if data["notebooks_plain_http"] else "https"
    return f"{scheme}://{address}:{data['notebooks_port']}"


def gpu_name(gpu: str) -> str:
    """A planned GPU (a PCI ID where one was found, else the declared name) as nvidia-smi names
    it (the solver's table)."""
    try:
        return find_gpu(gpu).name
    except StackError:
        return gpu


def gpu_announcement(gpus: tuple[str, ...]) -> str:
    """The line the hub's pages show about the host's GPUs (HTML; GPU names escaped)."""
    if not gpus:
        return "This workstation has no NVIDIA GPU: notebooks run on the CPU."
    listed = ", ".join(f"{count} &times; {html.escape(name)}"
                       for name, count in Counter(gpu_name(gpu) for gpu in gpus).items())
    return f"This workstation's GPUs: {listed}."


def kernel_display_name(plan) -> str:
    """How the managed environment appears in JupyterLab's launcher and kernel menu."""
    tensorflow, torch = plan.tensorflow.version, plan.torch.version
    frameworks = [f"TensorFlow {tensorflow}" if tensorflow else None,
                  f"PyTorch {torch}" if torch else None]
    listed = " + ".join(f for f in frameworks if f) or "no frameworks"
    return f"dlws: {listed} (Python {plan.python.version})"


def kernel_spec(data: Any, plan) -> dict[str, Any]:
    prefix = environment_prefix(data)
    return {
        "argv": [f"{prefix}/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": kernel_display_name(plan),
        "language": "python",
        # The environment's tools (pip, dlws-train-check) first on PATH in `!` commands.
        # TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's C++ INFO and WARNING lines (oneDNN, absl, "could
        # not find cuda drivers" on CPU hosts) stay out of every first cell; errors still show.
        # Back on in a notebook: os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0" before importing it.
        "env": {"PATH": f"{prefix}/bin:/usr/local/bin:/usr/bin:/bin",
                "TF_CPP_MIN_LOG_LEVEL": "2"},
        "metadata": {"debugger": True, "dlws": {"environment": prefix}},
    }


def hub_config(data: Any, plan) -> str:
    """jupyterhub_config.py: every value written with repr() (inventory data is hostile);
    secrets are read from their root-only files when the hub starts, never written here."""
    where = paths(data)
    state = data["notebooks_state_dir"]
    scheme = "http" if data["notebooks_plain_http"] else "https"
    address = data["notebooks_address"]
    bind = f"{scheme}://{f'[{address}]' if ':' in address else address}:{data['notebooks_port']}"
    lines = [
        "# Managed by dlws (roles/notebooks). No secret is written here: the cookie secret,",
        "# the proxy's token and the verify service's token are read from root-only files.",
        "from pathlib import Path",
        "",
        "c = get_config()  # noqa: F821",
        f"c.JupyterHub.bind_url = {bind!r}",
        f"c.JupyterHub.cookie_secret_file = {where['cookie_secret']!r}",
        f"c.JupyterHub.db_url = {'sqlite:///' + state + '/jupyterhub.sqlite'!r}",
        f"c.ConfigurableHTTPProxy.command = [{PROXY_COMMAND!r}]",
        f"c.ConfigurableHTTPProxy.auth_token = Path({where['proxy_token']!r}).read_text().strip()",
        f"c.ConfigurableHTTPProxy.pid_file = {state + '/proxy.pid'!r}",
        "# PAM logins of the system's accounts, members of one group only.",
        "c.JupyterHub.authenticator_class = 'pam'",
        f"c.PAMAuthenticator.allowed_groups = {{{data['notebooks_group']!r}}}",
        "# No PAM session per login: pam_systemd needs logind, and servers are the spawner's.",
        "c.PAMAuthenticator.open_sessions = False",
        "# Being in the hub's database admits nobody: the group decides at every login.",
        "c.Authenticator.allow_existing_users = False",
        "# Each user's server runs as that user (LocalProcessSpawner: their groups, GPUs too).",
        f"c.Spawner.cmd = [{data['notebooks_prefix'] + '/bin/jupyterhub-singleuser'!r}]",
        "c.Spawner.default_url = '/lab'",
        "# The managed environment's kernel is in /usr/local/share/jupyter/kernels; the hub's",
        "# own Python is not offered as a kernel (it has no frameworks).",
        "c.Spawner.args = ['--KernelSpecManager.ensure_native_kernel=False',",
        "                  # kernels talk over Unix sockets in the user's own runtime folder,",
        "                  # not TCP ports that every account on the workstation can reach",
        "                  '--KernelManager.transport=ipc',",
        "                  # extensions come with the hub's lock, not from PyPI at run time",
        "                  '--LabApp.extension_manager=readonly']",
        "# JupyterLab's first start on a busy workstation took over 30 s (measured here).",
        "c.Spawner.http_timeout = 120",
        "c.Spawner.start_timeout = 180",
        f"c.JupyterHub.template_vars = {{'announcement': {gpu_announcement(plan.gpu.models)!r}}}",
        "# verify's notebook run (verify/test_notebooks.py): start and use lab users' servers.",
        "c.JupyterHub.services = [{'name': 'dlws-verify', 'api_token': "
        f"Path({where['verify_token']!r}).read_text().strip()}}]",
        "c.JupyterHub.load_roles = [{'name': 'dlws-verify', 'services': ['dlws-verify'],",
        "                            'scopes': ['admin:users', 'admin:servers',",
        "                                       'access:servers']}]",
    ]
    if not data["notebooks_plain_http"]:
        lines += [f"c.JupyterHub.ssl_cert = {where['cert']!r}",
                  f"c.JupyterHub.ssl_key = {where['key']!r}"]
    return "\n".join(lines) + "\n"


def unit(data: Any) -> str:
    prefix, where = data["notebooks_prefix"], paths(data)
    return (
        "# Managed by dlws (roles/notebooks).\n"
        "[Unit]\n"
        "Description=JupyterHub for the lab (dlws)\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n\n"
        "[Service]\n"
        "User=root\n"
        f"WorkingDirectory={unitfile.setting(data['notebooks_state_dir'])}\n"
        "Environment="
        + unitfile.environment("PATH", f"{prefix}/bin:/usr/local/sbin:/usr/local/bin:"
                                       "/usr/sbin:/usr/bin:/sbin:/bin") + "\n"
        "ExecStart="
        + unitfile.exec_line(f"{prefix}/bin/jupyterhub", "-f", where["config"]) + "\n"
        "Restart=on-failure\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


# Reads base's lab users and python_env's keys: a nested deploy sees only its own defaults.
@deploy("Notebook service", data_defaults={**base.DEFAULTS, **python_env.DEFAULTS, **DEFAULTS})
def install() -> None:
    """JupyterHub for base_lab_users: its own hash-locked environment, the distribution's proxy,
    TLS (the inventory's certificate or a self-signed one), PAM logins for notebooks_group only,
    the managed environment as a system-wide kernel, a systemd unit. Off unless notebooks_enabled.
    """
    if not host.data.notebooks_enabled:
        host.noop("notebooks skipped: notebooks_enabled is False")
        return
    plan = host_plan()
    data = host_data()
    where = paths(data)
    if not data["notebooks_plain_http"] and not data["notebooks_tls_cert"]:
        _certificate_address(data["notebooks_address"])  # refused before the host changes
    _lab_group()
    _hub_environment(plan)
    _apt.packages(name="Install the proxy (node-configurable-http-proxy)",
                  packages=[PROXY_PACKAGE], no_recommends=True,
                  _env={"DEBIAN_FRONTEND": "noninteractive"})
    files.directory(name="Create the hub's configuration folder", path=data["notebooks_config_dir"],
                    mode="755", user="root", group="root")
    files.directory(name="Create the hub's state folder, root only",
                    path=data["notebooks_state_dir"], mode="700", user="root", group="root")
    changed = _secrets(where)
    if not data["notebooks_plain_http"]:
        changed = _tls(where) or changed
    changed = files.put(
        name="Configure JupyterHub (PAM, the lab group, TLS, the GPU list)",
        src=StringIO(hub_config(data, plan)), dest=where["config"], mode="644",
        user="root", group="root",
    ).will_change or changed
    files.put(
        name=f"Register the managed environment as the kernel '{kernel_display_name(plan)}'",
        src=StringIO(json.dumps(kernel_spec(data, plan), indent=1) + "\n"),
        dest=where["kernel"], mode="644", create_remote_dir=True,
    )
    script = (package_files("dlws.roles.notebooks") / "files" / "notebook_check.py").read_text()
    files.put(name="Install verify's notebook runner (dlws-notebook-check), root only",
              src=StringIO(f"#!{data['notebooks_prefix']}/bin/python\n{script}"),
              dest=where["check"], mode="700", user="root", group="root",
              create_remote_dir=False)
    _service(changed)


def _lab_group() -> None:
    group = host.data.notebooks_group
    server.group(name=f"Ensure the lab group {group} exists", group=group)
    for user in declared_lab_users(host.data):
        server.user(name=f"Let {user} log in to the hub (group {group})", user=user,
                    groups=[group], append=True, create_home=True, shell="/bin/bash")


def _hub_environment(plan) -> None:
    prefix = host.data.notebooks_prefix
    server.shell(
        name=f"Create the hub's environment {prefix}",
        commands=[cmd("python3", "-m", "venv", "--", prefix)],
        _if=lambda: host.get_fact(File, path=f"{prefix}/bin/python") is None,
    )
    files.directory(name=f"Let every user run {prefix}", path=prefix, mode="755")
    spec = hub_spec(plan, host_data())
    requirements, lock = python_env.locked(spec)
    python_env.install_packages(
        f"Install JupyterHub {host.data.notebooks_jupyterhub_version} and JupyterLab "
        f"{host.data.notebooks_jupyterlab_version}" + (" from the hash lock" if lock else ""),
        requirements, lock=lock, prefix=prefix)
    # ipykernel (a JupyterLab dependency) ships the hub's own Python as a kernel; users would
    # pick a Python without the frameworks. The managed environment's kernel replaces it.
    files.directory(name="Hide the hub's own Python from the kernel list",
                    path=f"{prefix}/{HIDDEN_KERNEL}", present=False)


def _new_secret(path: str, what: str) -> bool:
    # umask 077: the file is root-only from its first byte; the value never reaches a log.
    made = server.shell(
        name=f"Make the {what} (root-only, once)",
        commands=[sh("umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' "
                     "> {}", path)],
        _if=lambda: host.get_fact(File, path=path) is None,
    ).will_change
    # A secret someone made readable is made root-only again (its value is kept).
    declared = secret_file(host.data, path)
    files.file(name=f"Keep the {what} root-only", path=path, mode=declared.mode,
               user=declared.owner, group=declared.group,
               _if=lambda: host.get_fact(File, path=path) is not None)
    return made


def _secrets(where: dict[str, str]) -> bool:
    changed = _new_secret(where["cookie_secret"], "hub's cookie secret")
    changed = _new_secret(where["proxy_token"], "proxy's API token") or changed
    return _new_secret(where["verify_token"], "verify service's API token") or changed


def _tls(where: dict[str, str]) -> bool:
    cert, key = host.data.notebooks_tls_cert, host.data.notebooks_tls_key
    if cert:
        # Checked on the controller before anything changed (dlws/tls.py: PEM, key matches).
        put_cert = files.put(name="Install the hub's TLS certificate", src=cert,
                             dest=where["cert"], mode="644", user="root", group="root")
        declared = secret_file(host.data, where["key"])
        put_key = files.put(name="Install the hub's TLS key (root-only)", src=key,
                            dest=declared.path, mode=declared.mode, user=declared.owner,
                            group=declared.group)
        return put_cert.will_change or put_key.will_change
    names = ["DNS:localhost", "IP:127.0.0.1"]
    address = _certificate_address(host.data.notebooks_address)
    if address not in ("0.0.0.0", "::", "127.0.0.1"):
        names.append(f"IP:{address}")
    # The host's own name comes from the host ("DNS:$(hostname)"); every value is quoted.
    made = server.shell(
        name="Make a self-signed TLS certificate for the hub (notebooks_tls_cert is not set)",
        commands=[
            sh("umask 077 && openssl req -x509 -newkey rsa:3072 -sha256 -days {} -nodes "
               '-subj "/CN=$(hostname)" -addext "subjectAltName=DNS:$(hostname),"{} '
               "-keyout {} -out {} 2>/dev/null && chmod 644 -- {}",
               int(host.data.notebooks_tls_days), ",".join(names), where["key"], where["cert"],
               where["cert"]),
        ],
        _if=lambda: (host.get_fact(File, path=where["cert"]) is None
                     or host.get_fact(File, path=where["key"]) is None),
    )
    if made.will_change:
        python.call(name="Report the self-signed certificate's fingerprint",
                    function=_report_fingerprint, cert=where["cert"])
    return made.will_change


def _certificate_address(value: str) -> str:
    """notebooks_address as it goes into the certificate: a plain IP address, nothing else
    (no zone id: openssl's subjectAltName IP: takes none)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if address is None or "%" in value:
        raise DeployError(
            f"host {host.name}: notebooks_address: {value!r} is not a plain IP address; give "
            "an IPv4 or IPv6 address without a zone id (e.g. 0.0.0.0 or 192.0.2.10)")
    return value


def _report_fingerprint(cert: str) -> None:
    ok, output = host.run_shell_command(
        cmd("openssl", "x509", "-in", cert, "-noout", "-subject", "-fingerprint", "-sha256"))
    text = " ".join(output.stdout_lines) if ok else "unreadable: " + output.stderr
    logger.warning(f"[{host.name}] self-signed hub certificate {cert}: {text}; clients must be "
                   "told this fingerprint (or give notebooks_tls_cert/notebooks_tls_key)")


def _service(changed: bool) -> None:
    data = host_data()
    unit_put = files.put(name=f"Install the {SERVICE} systemd unit", src=StringIO(unit(data)),
                         dest=UNIT, mode="644")
    if host.get_fact(Directory, path="/run/systemd/system") is None:
        note = (f"systemd is not running on this host (a container?): {UNIT} is installed, "
                "not started; start the hub as its ExecStart says")
        logger.warning(f"[{host.name}] {note}")  # a noop is shown only with -v
        host.noop(note)
        return
    if unit_put.will_change:
        systemd.daemon_reload(name="Reload systemd (the hub's unit changed)")
    systemd.service(name=f"Enable and start {SERVICE}", service=SERVICE, running=True,
                    enabled=True, restarted=changed or unit_put.will_change)
