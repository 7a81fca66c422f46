"""Broken inventories through the real CLI: refused before any operation, naming host, key and fix.

Hosts are pyinfra's @fake connector (nothing is touched); the deploy is deploy/workstation.py as
users run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
HOST = "@fake/ws-01"
# What a bare Debian 12 host answers to the facts the plan reads before any operation.
FAKE_DEBIAN_12 = {
    "python_env_require_hashes": False,  # the missing-lock case turns it on
    "fake_delay": 0,
    "fake_delay_jitter": 0,
    "fake_responses": {
        "cat /etc/os-release": ["ID=debian", 'VERSION_ID="12"', "VERSION_CODENAME=bookworm"],
        "uname -m": "x86_64",
    },
}
MISSING = "/nonexistent/dlws"

# (case id, host data, the key the message must name, a fragment of the fix it must give)
CASES = [
    # unknown keys, with a suggestion where one is close
    ("typo-gpu_model", {"gpu_modle": "NVIDIA L4"}, "gpu_modle", "did you mean 'gpu_model'"),
    ("typo-cuda_version", {"cuda_verison": "12.4"}, "cuda_verison", "did you mean 'cuda_version'"),
    ("typo-base_extra_packages", {"base_extra_pkgs": ["htop"]}, "base_extra_pkgs",
     "did you mean 'base_extra_packages'"),
    ("typo-torch", {"framework_torch": "2.13"}, "framework_torch",
     "did you mean 'frameworks_torch'"),
    ("unknown-key", {"colour_scheme": "dark"}, "colour_scheme", "remove it"),
    # wrong types
    ("gpu_count-str", {"gpu_count": "2"}, "gpu_count", "expected int"),
    ("gpu_count-bool", {"gpu_count": True}, "gpu_count", "expected int"),
    ("accuracy-int", {"verify_min_accuracy": 95}, "verify_min_accuracy", "expected float"),
    ("extra_packages-str", {"base_extra_packages": "htop"}, "base_extra_packages",
     "expected list"),
    ("extra_packages-int-item", {"base_extra_packages": [1]}, "base_extra_packages",
     "items must be strings"),
    ("extra_index-str", {"python_env_extra_index_urls": "https://pypi.lab/simple"},
     "python_env_extra_index_urls", "expected list"),
    ("lock_timeout-str", {"base_apt_lock_timeout_s": "120"}, "base_apt_lock_timeout_s",
     "expected int"),
    # values out of range or outside the choices
    ("gpu_count-negative", {"gpu_count": -1}, "gpu_count", "0 or more"),
    ("epochs-zero", {"verify_epochs": 0}, "verify_epochs", "greater than 0"),
    ("accuracy-over-1", {"verify_min_accuracy": 1.5}, "verify_min_accuracy", "in (0, 1]"),
    ("lock_timeout-negative", {"base_apt_lock_timeout_s": -5}, "base_apt_lock_timeout_s",
     "0 or more"),
    ("kernel_headers-choice", {"base_kernel_headers": "true"}, "base_kernel_headers",
     "allowed: 'auto', 'yes', 'no'"),
    ("installer-choice", {"python_env_installer": "conda"}, "python_env_installer",
     "allowed: 'uv', 'pip'"),
    ("installer-typo", {"python_env_installer": "uvv"}, "python_env_installer",
     "did you mean 'uv'"),
    ("display-typo", {"nvidia_driver_display": "dekstop"}, "nvidia_driver_display",
     "did you mean 'desktop'"),
    # a GPU only NVIDIA's legacy branch supports (Kepler), and a branch without the GPU (the
    # H200 is first listed by R550)
    ("gpu-legacy", {"gpu_count": 1, "gpu_model": "Tesla K80"}, "gpu_model",
     "legacy 470.xx driver branch"),
    ("h200-driver-535", {"gpu_count": 1, "gpu_model": "NVIDIA H200",
                         "nvidia_driver_branch": "535"}, "nvidia_driver_branch",
     "set nvidia_driver_branch to 550 or newer"),
    ("flavour-typo", {"nvidia_driver_flavour": "opn"}, "nvidia_driver_flavour",
     "did you mean 'open'"),
    ("verify_frameworks-jax", {"verify_frameworks": ["jax"]}, "verify_frameworks",
     "'tensorflow' or 'torch'"),
    ("python-version", {"python_env_python": "3"}, "python_env_python", "a version like '3.11'"),
    # paths and URLs
    ("prefix-relative", {"python_env_prefix": "opt/venv"}, "python_env_prefix", "absolute path"),
    ("data_dir-relative", {"hardware_data_dir": "data"}, "hardware_data_dir", "absolute path"),
    ("proxy-no-scheme", {"base_http_proxy": "proxy:3128"}, "base_http_proxy", "http(s)://"),
    ("mirror-no-scheme", {"base_apt_mirror": "deb.debian.org/debian"}, "base_apt_mirror",
     "http(s)://"),
    ("index-no-scheme", {"python_env_index_url": "pypi.lab/simple"}, "python_env_index_url",
     "http(s)://"),
    ("cache-proxy-no-scheme", {"cache_apt_proxy": "cache:3142"}, "cache_apt_proxy",
     "http(s)://"),
    ("cache-pip-dir-relative", {"cache_pip_dir": "var/cache/dlws"}, "cache_pip_dir",
     "absolute path"),
    # controller files that do not exist
    ("wheelhouse-missing", {"python_env_wheelhouse": f"{MISSING}/wheels"},
     "python_env_wheelhouse", "does not exist on the controller; fix the path"),
    ("ca-missing", {"base_extra_ca_certs": [f"{MISSING}/ca.pem"]}, "base_extra_ca_certs",
     "does not exist on the controller; fix the path"),
    ("ssh_key-missing", {"ssh_key": f"{MISSING}/id_ed25519"}, "ssh_key",
     "does not exist on the controller; fix the path"),
    ("ssh_config-missing", {"ssh_config_file": f"{MISSING}/ssh_config"}, "ssh_config_file",
     "does not exist on the controller; fix the path"),
    # impossible versions (the solver's table)
    ("cuda-12.7", {"cuda_version": "12.7"}, "cuda_version", "known: "),
    ("tensorflow-1.0", {"frameworks_tensorflow": "1.0"}, "frameworks_tensorflow", "known: "),
    ("torch-1.0", {"frameworks_torch": "1.0"}, "frameworks_torch", "known: "),
    ("torch-latest", {"frameworks_torch": "latest"}, "frameworks_torch", "use 'auto', 'none'"),
    ("driver-123", {"nvidia_driver_branch": "123"}, "nvidia_driver_branch", "known: "),
    # GPUs
    ("gpu-without-model", {"gpu_count": 2}, "gpu_model", "set it to the name nvidia-smi prints"),
    ("gpu-unknown-model", {"gpu_count": 1, "gpu_model": "NVIDIA GeForce GTX 9999"}, "gpu_model",
     "did you mean"),
    ("gpu-unknown-pci-id", {"gpu_count": 1, "gpu_model": "10de:ffff"}, "gpu_model",
     "lspci -nn"),
    # conflicting sources: Debian 12's archive has no driver for Blackwell
    ("distro-driver-blackwell",
     {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090", "nvidia_driver_source": "distro"},
     "nvidia_driver_source", "set nvidia_driver_source to 'cuda_repo'"),
    # hash pinning on, and no lock for what this host would install
    ("hash-lock-missing", {"python_env_require_hashes": True}, "python_env_require_hashes",
     "bin/dlws lock --inventory"),
]


def write_inventory(tmp_path: Path, hosts: dict[str, dict]) -> Path:
    inventory = tmp_path / "inventory.py"
    entries = ",\n".join(f"    ({name!r}, {{**FAKE, **{data!r}}})" for name, data in hosts.items())
    inventory.write_text(f"FAKE = {FAKE_DEBIAN_12!r}\nhosts = [\n{entries},\n]\n")
    return inventory


def deploy(inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYINFRA, "-y", str(inventory), "deploy/workstation.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYINFRA_FAKE_DELAY": "0", "PYINFRA_FAKE_DELAY_JITTER": "0"},
    )


def assert_refused(out: subprocess.CompletedProcess, host: str, key: str, fix: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode != 0, f"the deploy was not refused:\n{text[-3000:]}"
    assert "Traceback" not in text, f"a traceback instead of a message:\n{text[-3000:]}"
    assert "Starting operation" not in text, f"operations ran before the refusal:\n{text[-3000:]}"
    assert f"host {host}: {key}:" in text, f"no message naming host {host} and key {key}:\n{text}"
    line = next(line for line in text.splitlines() if f"host {host}: {key}:" in line)
    assert fix in line, f"the message does not give the fix {fix!r}:\n{line}"


def test_at_least_30_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize(("data", "key", "fix"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_broken_host_data_is_refused(tmp_path, data, key, fix):
    assert_refused(deploy(write_inventory(tmp_path, {HOST: data})), HOST, key, fix)


def test_one_broken_host_stops_the_whole_fleet(tmp_path):
    """A good host listed first is not touched either: the check runs before any operation."""
    out = deploy(write_inventory(tmp_path, {"@fake/ws-ok": {}, "@fake/ws-bad": {"gpu_count": 2}}))
    assert_refused(out, "@fake/ws-bad", "gpu_model", "nvidia-smi")


def test_a_host_without_its_hash_lock_stops_the_whole_fleet(tmp_path):
    """The lock check runs while the fleet is planned: the good host listed first is untouched."""
    hosts = {"@fake/ws-ok": {}, "@fake/ws-unlocked": {"python_env_require_hashes": True}}
    out = deploy(write_inventory(tmp_path, hosts))
    assert_refused(out, "@fake/ws-unlocked", "python_env_require_hashes", "commit it")


def test_every_problem_of_a_host_is_listed_at_once(tmp_path):
    out = deploy(write_inventory(tmp_path, {HOST: {"gpu_count": "2", "cuda_verison": "12.4",
                                                   "base_http_proxy": "proxy:3128"}}))
    for key, fix in (("gpu_count", "expected int"), ("cuda_verison", "did you mean"),
                     ("base_http_proxy", "http(s)://")):
        assert_refused(out, HOST, key, fix)


def test_good_data_runs(tmp_path):
    """The control case: the same harness with valid data does run operations."""
    out = deploy(write_inventory(tmp_path, {HOST: {}}))
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "Starting operation" in text, text[-3000:]


# Broken Ansible inventories, deployed through inventory/ansible.py as a lab would: each is
# refused while the inventory loads, before pyinfra connects anywhere, naming the file (and
# line), the host and the variable.
def _vaulted(text: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    ciphertext = VaultLib([("default", VaultSecret(b"not given"))]).encrypt(text).decode()
    return "!vault |\n" + "".join(f"  {line}\n" for line in ciphertext.splitlines())


INI = "[gpu]\nws01 ansible_host=10.0.0.1\n"
# (case id, files of the inventory directory, the source in it, fragments the message line must
# hold: file[:line], then host and variable (where the fault has one), then the fix)
ANSIBLE_CASES = [
    ("yaml-syntax", {"hosts.yml": "all:\n  hosts:\n    ws01: {gpu_count: 1\n"}, "hosts.yml",
     ["hosts.yml:4:", "YAML parsing failed"]),
    ("ini-syntax", {"hosts.ini": "[gpu]\nws01 gpu_count\n"}, "hosts.ini",
     ["hosts.ini:", "Expected key=value host variable assignment, got: gpu_count"]),
    ("ini-section", {"hosts.ini": "[gpu\nws01\n"}, "hosts.ini",
     ["hosts.ini:", "Failed to parse inventory"]),
    ("group_vars-syntax", {"hosts.ini": INI, "group_vars/gpu.yml": "gpu_count: [1\n"}, ".",
     ["group_vars/gpu.yml:2:", "YAML parsing failed"]),
    ("host_var-type", {"hosts.ini": INI, "host_vars/ws01.yml": "gpu_count: two\n"}, ".",
     ["host_vars/ws01.yml:1: host ws01: gpu_count:", "expected int"]),
    ("group_vars-unknown-key",
     {"hosts.ini": INI, "group_vars/gpu.yml": "gpu_modle: NVIDIA L4\ngpu_count: 0\n"}, ".",
     ["group_vars/gpu.yml:1: host ws01: gpu_modle:", "did you mean 'gpu_model'"]),
    ("ini-number-for-text", {"hosts.ini": INI + "[gpu:vars]\nnvidia_driver_branch=580\n"}, ".",
     ["hosts.ini:4: host ws01: nvidia_driver_branch:", "quote it"]),
    ("gpu-without-model", {"hosts.yml": "gpu:\n  hosts:\n    ws01:\n      gpu_count: 2\n"},
     "hosts.yml", ["hosts.yml:4: host ws01: gpu_model:", "nvidia-smi"]),
    ("connection-winrm", {"hosts.ini": "[gpu]\nws01 ansible_connection=winrm\n"}, "hosts.ini",
     ["hosts.ini:2: host ws01: ansible_connection:", "use ssh, docker or local"]),
    ("port-not-a-number", {"hosts.ini": "[gpu]\nws01 ansible_port=ssh\n"}, "hosts.ini",
     ["hosts.ini:2: host ws01: ansible_port:", "expected a port number"]),
    ("ssh-key-missing",
     {"hosts.ini": f"[gpu]\nws01 ansible_ssh_private_key_file={MISSING}/id_ed25519\n"},
     "hosts.ini", ["hosts.ini:2: host ws01: ansible_ssh_private_key_file:",
                   "does not exist on the controller"]),
    ("vault-without-password",
     {"hosts.ini": INI, "group_vars/gpu.yml": f"gpu_count: 1\ngpu_model: {_vaulted('NVIDIA L4')}"},
     ".", ["group_vars/gpu.yml:2: host ws01: gpu_model:", "ANSIBLE_VAULT_PASSWORD_FILE"]),
    ("template-undefined", {"hosts.ini": INI, "group_vars/gpu.yml": 'gpu_model: "{{ gpu }}"\n'},
     ".", ["group_vars/gpu.yml:1: host ws01: gpu_model:", "'gpu' is undefined"]),
    ("script-fails", {"inventory.sh": "#!/bin/sh\necho 'no CMDB' >&2\nexit 3\n"}, "inventory.sh",
     ["inventory.sh", "non-zero exit code 3"]),
]


@pytest.fixture(scope="module")
def ansible_refusals(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every Ansible case deployed at once (each is its own pyinfra run; they share nothing)."""
    from concurrent.futures import ThreadPoolExecutor

    env = {k: v for k, v in os.environ.items()
           if k not in ("ANSIBLE_VAULT_PASSWORD_FILE", "DLWS_ANSIBLE_VAULT_PASSWORD_FILE",
                        "DLWS_ANSIBLE_LIMIT")}

    def run(case) -> subprocess.CompletedProcess:
        name, files, source = case[:3]
        folder = tmp_path_factory.mktemp(name)
        for relative, text in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
            if relative.endswith(".sh"):
                (folder / relative).chmod(0o755)
        return subprocess.run([PYINFRA, "-y", "inventory/ansible.py", "deploy/workstation.py"],
                              cwd=ROOT, capture_output=True, text=True, timeout=180,
                              env={**env, "DLWS_ANSIBLE_INVENTORY": str(folder / source)})

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([c[0] for c in ANSIBLE_CASES], pool.map(run, ANSIBLE_CASES), strict=True))


@pytest.mark.parametrize(("case", "fragments"), [(c[0], c[3]) for c in ANSIBLE_CASES],
                         ids=[c[0] for c in ANSIBLE_CASES])
def test_broken_ansible_inventory_is_refused(ansible_refusals, case, fragments):
    out = ansible_refusals[case]
    text = out.stdout + out.stderr
    assert out.returncode != 0, f"the deploy was not refused:\n{text[-3000:]}"
    assert "Traceback" not in text, f"a traceback instead of a message:\n{text[-3000:]}"
    assert "Connecting to hosts" not in text, f"pyinfra connected before refusing:\n{text}"
    lines = [line for line in text.splitlines() if fragments[0] in line]
    assert lines, f"no message naming {fragments[0]}:\n{text[-3000:]}"
    assert any(all(fragment in line for fragment in fragments) for line in lines), \
        f"no line naming {fragments[0]} says {fragments[1:]}:\n{text[-3000:]}"
