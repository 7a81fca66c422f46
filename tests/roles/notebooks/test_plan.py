"""roles/notebooks at the plan level (recorded facts, pyinfra's @fake connector) and its refusals.

What the deploy would run on Debian and Ubuntu hosts, with and without systemd, a GPU, a declared
certificate; and broken notebook data refused through the real CLI before any operation.
"""

from __future__ import annotations

import ast
import datetime
import json
import subprocess
from pathlib import Path

import pytest

from dlws.roles.base import PROXY_ENV_FILE
from dlws.roles.notebooks import gpu_announcement, hub_config
from dlws.tls import pair_problem
from tests.fake_hosts import facts, plan
from tests.plan.cases import pip_installs
from tests.validate.test_broken_input import HOST, assert_refused, deploy, write_inventory

SYSTEMD = {"/run/systemd/system": "user=root group=root mode=drwxr-xr-x atime=0 mtime=0 "
                                  "ctime=0 size=40 '/run/systemd/system'"}
USERS = {"uname -s": "Linux", "command -v useradd": "/usr/sbin/useradd",
         "command -v usermod": "/usr/sbin/usermod"}


def run(os: str = "debian-12", lspci: str | None = None, systemd: bool = False, **data):
    responses = {**facts(os, lspci), **USERS, **(SYSTEMD if systemd else {})}
    host = {"gpu_count": 0, "python_env_require_hashes": False, "base_lab_users": ["ada"],
            "notebooks_enabled": True, "fake_responses": responses, **data}
    return plan({"@fake/nb": host})["@fake/nb"]


def make_pair(folder, name: str = "hub", encrypt: bytes | None = None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ws-01.lab.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    crt, pem = folder / f"{name}.crt", folder / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(encrypt) if encrypt
        else serialization.NoEncryption()))
    pem.chmod(0o600)
    return str(crt), str(pem)


# --- plan level -------------------------------------------------------------------------------

def test_off_by_default_and_the_environment_lock_is_unchanged():
    nb = run(notebooks_enabled=False)
    assert not [op for op in nb.ops if op.name.startswith("Notebook service |")], nb.describe()
    installs = " ".join(c for op in nb.named("Install the frameworks") for c in op.commands)
    assert "ipykernel" not in installs, installs


@pytest.mark.parametrize("os", ["debian-12", "debian-13", "ubuntu-22.04", "ubuntu-24.04"])
def test_hub_environment_proxy_and_kernel_package(os):
    nb = run(os)
    assert nb.error is None, nb.error
    installs = " ".join(pip_installs(nb, "Install the frameworks"))
    assert "ipykernel==7.4.0" in installs, installs  # the managed env becomes a kernel
    [hub] = pip_installs(nb, "Install JupyterHub")
    assert hub.startswith("/opt/dlws/venv/bin/uv pip install --python /opt/dlws/hub/bin/python")
    assert "jupyterhub==6.1.1" in hub and "jupyterlab==4.6.6" in hub, hub
    assert ["node-configurable-http-proxy"] in nb.apt_installs(), nb.apt_installs()
    group = [c for op in nb.named("log in to the hub") for c in op.commands]
    assert any("-G lab" in c or "usermod -a -G lab" in c for c in group), group


PROXY = {"base_http_proxy": "http://proxy.lab:3128", "base_https_proxy": "http://proxy.lab:3128",
         "python_env_index_url": "https://pypi.lab/simple",
         "python_env_extra_index_urls": ["https://extra.lab/simple"]}


def test_hub_installs_behind_the_proxy_as_the_frameworks_do():
    """Behind a proxy, the JupyterHub install sources /etc/dlws/proxy.env and names the lab's
    indexes exactly as the frameworks install does: both are python_env's one installer."""
    nb = run(**PROXY)
    assert nb.error is None, nb.error
    [hub] = pip_installs(nb, "Install JupyterHub")
    frameworks = pip_installs(nb, "Install the frameworks")
    assert frameworks, nb.describe()
    for command in (hub, *frameworks):
        assert command.startswith(f"set -a && . {PROXY_ENV_FILE} && set +a && "), command
        assert "--index-url https://pypi.lab/simple" in command, command
        assert "--extra-index-url https://extra.lab/simple" in command, command


    nb = run()
    config = nb.uploads()["/etc/dlws/hub/jupyterhub_config.py"]
    ast.parse(config)
    for line in ("c.JupyterHub.bind_url = 'https://0.0.0.0:8443'",
                 "c.JupyterHub.authenticator_class = 'pam'",
                 "c.PAMAuthenticator.allowed_groups = {'lab'}",
                 "c.JupyterHub.ssl_key = '/etc/dlws/hub/tls.key'",
                 "c.ConfigurableHTTPProxy.command = ['/usr/bin/configurable-http-proxy']"):
        assert line in config, config
    # Secrets are read from root-only files when the hub starts; none is in the config.
    assert "read_text().strip()" in config and "token_hex" not in config


def test_plain_http_only_when_declared():
    # Plain HTTP is for a TLS proxy on the same host: the hub listens on loopback only.
    config = run(notebooks_plain_http=True, notebooks_address="127.0.0.1",
                 notebooks_port=8000).uploads()["/etc/dlws/hub/jupyterhub_config.py"]
    assert "c.JupyterHub.bind_url = 'http://127.0.0.1:8000'" in config
    assert "ssl_cert" not in config


def test_self_signed_certificate_made_once_root_only_and_reported():
    nb = run()
    [op] = nb.named("self-signed TLS certificate")
    assert op.conditional, "the certificate must be made only where none exists"
    assert op.commands[0].startswith("umask 077 && openssl req -x509"), op.commands
    assert nb.named("fingerprint"), nb.describe()
    for secret in ("hub's cookie secret", "proxy's API token", "verify service's API token"):
        [make] = nb.named(f"Make the {secret}")
        assert make.conditional and make.commands[0].startswith("umask 077 && "), make
        [keep] = nb.named(f"Keep the {secret} root-only")
        assert any(c.startswith("chmod 600 ") for c in keep.commands), keep


def test_declared_certificate_is_uploaded_key_root_only(tmp_path):
    crt, key = make_pair(tmp_path)
    nb = run(notebooks_tls_cert=crt, notebooks_tls_key=key)
    assert not nb.named("self-signed"), nb.describe()
    uploads = nb.uploads()
    assert uploads["/etc/dlws/hub/tls.crt"] == Path(crt).read_text()
    [key_op] = nb.named("TLS key")
    assert "chmod 600 /etc/dlws/hub/tls.key" in key_op.commands, key_op.commands


def test_kernel_named_after_the_planned_frameworks():
    nb = run()
    spec = json.loads(nb.uploads()["/usr/local/share/jupyter/kernels/dlws/kernel.json"])
    assert spec["argv"][:3] == ["/opt/dlws/venv/bin/python", "-m", "ipykernel_launcher"]
    assert spec["display_name"].startswith("dlws: TensorFlow 2.21.0 + PyTorch "), spec
    assert spec["display_name"].endswith("(Python 3.11)"), spec
    # The kernel starts quietly: TensorFlow's C++ INFO/WARNING lines off (README says how back).
    assert spec["env"]["TF_CPP_MIN_LOG_LEVEL"] == "2", spec


def test_gpu_host_page_lists_its_gpus():
    nb = run(lspci="rtx-4090", gpu_count=1, gpu_model="NVIDIA GeForce RTX 4090",
             nvidia_driver_source="distro")
    config = nb.uploads()["/etc/dlws/hub/jupyterhub_config.py"]
    assert nb.stack.gpu.models, nb.describe()
    assert repr(gpu_announcement(nb.stack.gpu.models)) in config, config
    assert "1 &times; NVIDIA GeForce RTX 4090" in config


def test_gpu_names_from_pci_ids_and_declared_names_agree():
    # The deploy plans with the PCI IDs it finds, verify with the declared model: same line.
    line = "This workstation's GPUs: 2 &times; NVIDIA GeForce RTX 4090."
    assert gpu_announcement(("10de:2684", "10de:2684")) == line
    assert gpu_announcement(("NVIDIA GeForce RTX 4090",) * 2) == line


def test_systemd_host_enables_and_starts_the_service():
    nb = run(systemd=True)
    assert nb.named("Enable and start dlws-jupyterhub"), nb.describe()
    assert nb.named("Reload systemd"), nb.describe()


def test_host_without_systemd_gets_the_unit_only():
    nb = run(systemd=False)
    assert nb.named("Install the dlws-jupyterhub systemd unit")
    assert not nb.named("Enable and start"), nb.describe()


def test_hostile_values_stay_python_literals():
    class Gpu:
        models = ("NVIDIA <b>x</b>'; import os #",)

    class Stack:
        gpu = Gpu()
    data = {"notebooks_config_dir": "/etc/dlws/hub", "notebooks_state_dir": "/var/lib/x'y",
            "notebooks_prefix": "/opt/dlws/hub", "notebooks_address": "0.0.0.0",
            "notebooks_port": 8443, "notebooks_plain_http": False, "notebooks_group": "lab"}
    config = hub_config(data, Stack())
    tree = ast.parse(config)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Import)]
    assert [alias.name for node in calls for alias in node.names] == [], config
    assert "&lt;b&gt;" in config and "<b>" not in config


# --- refusals before anything changes ---------------------------------------------------------

def test_tls_pair_checks(tmp_path):
    crt, key = make_pair(tmp_path)
    other_crt, other_key = make_pair(tmp_path, "other")
    _, locked_key = make_pair(tmp_path, "locked", encrypt=b"secret")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    assert pair_problem(crt, key) is None
    assert pair_problem(None, None) is None
    assert "give both" in pair_problem(crt, None)
    assert "does not belong" in pair_problem(crt, other_key)
    assert "not a PEM certificate" in pair_problem(str(not_pem), key)
    assert "encrypted" in pair_problem(crt, locked_key)
    assert "secret" not in pair_problem(crt, locked_key)


NOTEBOOK_CASES = [
    ("no-lab-users", {"notebooks_enabled": True}, "notebooks_enabled", "base_lab_users"),
    ("port-out-of-range", {"notebooks_port": 70000}, "notebooks_port", "1 to 65535"),
    ("group-sudo", {"notebooks_group": "sudo"}, "notebooks_group", "grants root"),
    ("prefix-usr", {"notebooks_prefix": "/usr"}, "notebooks_prefix", "system folder"),
    ("address-not-ip", {"notebooks_address": "hub.lab.example"}, "notebooks_address",
     "IP address"),
    ("group-shell", {"notebooks_group": "lab; rm -rf /"}, "notebooks_group", "group name"),
    ("version-latest", {"notebooks_jupyterhub_version": "latest"},
     "notebooks_jupyterhub_version", "a version like '6.1.1'"),
    ("cert-missing", {"notebooks_tls_cert": "/nonexistent/hub.crt"}, "notebooks_tls_cert",
     "does not exist on the controller"),
]


@pytest.mark.parametrize(("data", "key", "fix"), [c[1:] for c in NOTEBOOK_CASES],
                         ids=[c[0] for c in NOTEBOOK_CASES])
def test_broken_notebook_data_is_refused(tmp_path, data, key, fix):
    assert_refused(deploy(write_inventory(tmp_path, {HOST: data})), HOST, key, fix)


@pytest.mark.parametrize("case", ["cert-only", "wrong-key", "encrypted-key", "not-pem"])
def test_broken_certificate_is_refused_before_any_change(tmp_path, case):
    crt, key = make_pair(tmp_path)
    _, other_key = make_pair(tmp_path, "other")
    _, locked = make_pair(tmp_path, "locked", encrypt=b"pass phrase")
    not_pem = tmp_path / "hub.der"
    subprocess.run(["openssl", "x509", "-in", crt, "-outform", "DER", "-out", str(not_pem)],
                   check=True)
    pair, fix = {"cert-only": ((crt, None), "give both"),
                 "wrong-key": ((crt, other_key), "does not belong"),
                 "encrypted-key": ((crt, locked), "without a passphrase"),
                 "not-pem": ((str(not_pem), key), "not a PEM file")}[case]
    data = {"notebooks_enabled": True, "base_lab_users": ["ada"], "notebooks_tls_cert": pair[0]}
    if pair[1]:
        data["notebooks_tls_key"] = pair[1]
    out = deploy(write_inventory(tmp_path, {HOST: data}))
    assert_refused(out, HOST, "notebooks_tls_cert", fix)
    assert "PRIVATE KEY" not in out.stdout + out.stderr  # no key material in the message


def test_world_readable_login_file_is_refused(tmp_path):
    logins = tmp_path / "logins"
    logins.write_text("ada:pw\n")
    logins.chmod(0o644)
    out = deploy(write_inventory(tmp_path, {HOST: {"verify_notebooks_logins": str(logins)}}))
    assert_refused(out, HOST, "verify_notebooks_logins", "chmod 600")
    assert "ada:pw" not in out.stdout + out.stderr
