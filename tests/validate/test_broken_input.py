"""Broken inventories through the real CLI: refused before any operation, naming host, key and fix.

Hosts are pyinfra's @fake connector (nothing is touched); the deploy is deploy/workstation.py as
users run it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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

TMP = "@TMP@"  # replaced by the test's scratch folder of controller files

# Refused by the inventory check, before pyinfra connects to any host. Each case: its id, the host
# data, the key the message must name, and a fragment of the fix it must give.
CASES = [
    # --- unknown keys, with a suggestion where one is close (dlws's and pyinfra's own)
    ("typo-gpu_model", {"gpu_modle": "NVIDIA L4"}, "gpu_modle", "did you mean 'gpu_model'"),
    ("typo-cuda_version", {"cuda_verison": "12.4"}, "cuda_verison", "did you mean 'cuda_version'"),
    ("typo-base_extra_packages", {"base_extra_pkgs": ["htop"]}, "base_extra_pkgs",
     "did you mean 'base_extra_packages'"),
    ("typo-torch", {"framework_torch": "2.13"}, "framework_torch",
     "did you mean 'frameworks_torch'"),
    ("unknown-key", {"colour_scheme": "dark"}, "colour_scheme", "remove it"),
    ("typo-ssh_keyfile", {"ssh_keyfile": "~/.ssh/id"}, "ssh_keyfile", "did you mean 'ssh_key'"),
    ("typo-ssh_prot", {"ssh_prot": 22}, "ssh_prot", "did you mean 'ssh_port'"),
    ("typo-_sudo_usr", {"_sudo_usr": "admin"}, "_sudo_usr", "did you mean '_sudo_user'"),
    ("typo-docker_identifer", {"docker_identifer": "x"}, "docker_identifer",
     "did you mean 'docker_identifier'"),
    ("unknown-underscore", {"_colour": "x"}, "_colour", "unknown pyinfra key"),
    # --- pyinfra keys that would put a secret on a host's command line
    ("su-password", {"_su_user": "root", "_su_password": "pw"}, "_su_password",
     "use _sudo with _sudo_password"),
    # --- passwords: refused without their value in the message (test_passwords_are_not_shown)
    ("sudo-password-newline", {"_sudo": True, "_sudo_password": "hunter2\nmore"},
     "_sudo_password", "control character"),
    ("ssh-password-list", {"ssh_password": ["hunter2-list"]}, "ssh_password", "expected text"),
    ("sudo-password-terminal", {"_sudo": True, "_sudo_password": "pw", "_get_pty": True},
     "_get_pty", "remove _get_pty"),
    ("ssh-key-password-long", {"ssh_key_password": "hunter2" * 200}, "ssh_key_password",
     "at most 1024"),
    # --- wrong types (strict booleans: "no" is a true string)
    ("gpu_count-str", {"gpu_count": "2"}, "gpu_count", "expected int"),
    ("gpu_count-bool", {"gpu_count": True}, "gpu_count", "expected int"),
    ("gpu_count-float", {"gpu_count": 2.0}, "gpu_count", "expected int"),
    ("accuracy-int", {"verify_min_accuracy": 95}, "verify_min_accuracy", "expected float"),
    ("extra_packages-str", {"base_extra_packages": "htop"}, "base_extra_packages",
     "expected list"),
    ("extra_packages-int-item", {"base_extra_packages": [1]}, "base_extra_packages",
     "is not a string"),
    ("extra_index-str", {"python_env_extra_index_urls": "https://pypi.lab/simple"},
     "python_env_extra_index_urls", "expected list"),
    ("extra_index-int-item", {"python_env_extra_index_urls": [1]},
     "python_env_extra_index_urls", "is not a string"),
    ("lock_timeout-str", {"base_apt_lock_timeout_s": "120"}, "base_apt_lock_timeout_s",
     "expected int"),
    ("login_path-no-string", {"python_env_login_path": "no"}, "python_env_login_path",
     "expected bool"),
    ("offline-yes-string", {"verify_offline": "yes"}, "verify_offline", "expected bool"),
    ("reboot-false-string", {"nvidia_driver_reboot": "false"}, "nvidia_driver_reboot",
     "expected bool"),
    ("manage_sources-int", {"base_apt_manage_sources": 0}, "base_apt_manage_sources",
     "expected bool"),
    ("require_hashes-none", {"python_env_require_hashes": None}, "python_env_require_hashes",
     "must be set"),
    ("_sudo-no-string", {"_sudo": "no"}, "_sudo", "a string such as 'no' counts as true"),
    ("_sudo-int", {"_sudo": 1}, "_sudo", "expected true or false"),
    ("ssh_port-str", {"ssh_port": "22"}, "ssh_port", "got '22'"),
    ("ssh_port-bool", {"ssh_port": True}, "ssh_port", "expected int"),
    ("ssh_allow_agent-str", {"ssh_allow_agent": "yes"}, "ssh_allow_agent",
     "expected true or false"),
    ("gpu_memory-str", {"gpu_min_memory_gib": "80"}, "gpu_min_memory_gib", "expected int"),
    ("memory-bool", {"hardware_min_memory_gib": True}, "hardware_min_memory_gib", "expected int"),
    ("frameworks-nested-list", {"verify_frameworks": [["torch"]]}, "verify_frameworks",
     "is not a string"),
    ("lab_users-str", {"base_lab_users": "alice"}, "base_lab_users", "expected list"),
    ("gpu_model-int", {"gpu_count": 1, "gpu_model": 4090}, "gpu_model", "expected str"),
    ("ca_certs-str", {"base_extra_ca_certs": "/etc/ca.pem"}, "base_extra_ca_certs",
     "expected list"),
    # --- numbers out of range (bounded: no overflow in the shell, no hang in the solver)
    ("gpu_count-negative", {"gpu_count": -1}, "gpu_count", "0 or more"),
    ("gpu_count-2**63", {"gpu_count": 2**63}, "gpu_count", "at most 64"),
    ("gpu_count-10**6", {"gpu_count": 10**6}, "gpu_count", "at most 64"),
    ("gpu_count-65", {"gpu_count": 65}, "gpu_count", "at most 64"),
    ("epochs-zero", {"verify_epochs": 0}, "verify_epochs", "1 or more"),
    ("epochs-huge", {"verify_epochs": 10**6}, "verify_epochs", "at most 100"),
    ("accuracy-over-1", {"verify_min_accuracy": 1.5}, "verify_min_accuracy", "in (0, 1]"),
    ("accuracy-zero", {"verify_min_accuracy": 0.0}, "verify_min_accuracy", "in (0, 1]"),
    ("accuracy-nan", {"verify_min_accuracy": float("nan")}, "verify_min_accuracy",
     "not a finite number"),
    ("sample-accuracy-over-1", {"verify_sample_min_accuracy": 2.0},
     "verify_sample_min_accuracy", "in (0, 1]"),
    ("power-fraction-zero", {"gpu_min_power_limit_fraction": 0.0},
     "gpu_min_power_limit_fraction", "in (0, 1]"),
    ("tflops-fraction-over-1", {"verify_min_tflops_fraction": 1.5},
     "verify_min_tflops_fraction", "in (0, 1]"),
    ("lock_timeout-negative", {"base_apt_lock_timeout_s": -5}, "base_apt_lock_timeout_s",
     "0 or more"),
    ("lock_timeout-10**30", {"base_apt_lock_timeout_s": 10**30}, "base_apt_lock_timeout_s",
     "at most 86400"),
    ("apt_cache-negative", {"base_apt_cache_s": -1}, "base_apt_cache_s", "0 or more"),
    ("apt_cache-huge", {"base_apt_cache_s": 10**12}, "base_apt_cache_s", "at most"),
    ("cpu_cores-zero", {"hardware_min_cpu_cores": 0}, "hardware_min_cpu_cores", "1 or more"),
    ("cpu_cores-huge", {"hardware_min_cpu_cores": 10**9}, "hardware_min_cpu_cores", "at most"),
    ("memory-inf", {"hardware_min_memory_gib": float("inf")}, "hardware_min_memory_gib",
     "not a finite number"),
    ("memory-zero", {"hardware_min_memory_gib": 0}, "hardware_min_memory_gib", "more than 0"),
    ("free-negative", {"hardware_min_free_gib": -1}, "hardware_min_free_gib", "0 or more"),
    ("read-1e300", {"hardware_min_read_mib_s": 1e300}, "hardware_min_read_mib_s", "at most"),
    ("gpu_memory-zero", {"gpu_min_memory_gib": 0}, "gpu_min_memory_gib", "more than 0"),
    ("ssh_port-zero", {"ssh_port": 0}, "ssh_port", "1 to 65535"),
    ("ssh_port-70000", {"ssh_port": 70000}, "ssh_port", "1 to 65535"),
    # --- choices and versions
    ("lab_users-root", {"base_lab_users": ["ada", "root"]}, "base_lab_users",
     "'root' is root or a system account"),
    ("lab_group-sudo", {"base_lab_group": "sudo"}, "base_lab_group", "grants root"),
    ("disk-unstable-path", {"storage_disks": [{"device": "/dev/sdb", "mount": "/data"}]},
     "storage_disks", "not a stable path"),
    ("disk-no-mount", {"storage_disks": [{"serial": "S7KGNU0X1"}]}, "storage_disks",
     "mount: required"),
    ("driver_updates-choice", {"nvidia_driver_updates": "never"}, "nvidia_driver_updates",
     "allowed: 'within_branch', 'hold', 'unmanaged'"),
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
    ("flavour-typo", {"nvidia_driver_flavour": "opn"}, "nvidia_driver_flavour",
     "did you mean 'open'"),
    ("source-typo", {"nvidia_driver_source": "cuda-repo"}, "nvidia_driver_source",
     "did you mean 'cuda_repo'"),
    ("nccl-choice", {"cudnn_nccl": "true"}, "cudnn_nccl", "allowed"),
    ("verify_frameworks-jax", {"verify_frameworks": ["jax"]}, "verify_frameworks",
     "'tensorflow' or 'torch'"),
    ("verify_frameworks-twice", {"verify_frameworks": ["torch", "torch"]}, "verify_frameworks",
     "listed twice"),
    ("python-version", {"python_env_python": "3"}, "python_env_python", "a version like '3.11'"),
    ("torch-latest", {"frameworks_torch": "latest"}, "frameworks_torch", "use 'auto', 'none'"),
    ("tensorflow-injection", {"frameworks_tensorflow": "2.21;touch /x"},
     "frameworks_tensorflow", "use 'auto', 'none'"),
    ("uv_version-latest", {"python_env_uv_version": "latest"}, "python_env_uv_version",
     "a version like '0.13.9'"),
    ("uv_version-injection", {"python_env_uv_version": "0.13.9;touch /x"},
     "python_env_uv_version", "a version like"),
    ("cuda-injection", {"cuda_version": "12.4$(touch /x)"}, "cuda_version",
     "a version like '12.4'"),
    ("cudnn-word", {"cudnn_version": "latest"}, "cudnn_version", "'wheels'"),
    ("driver-branch-2-digits", {"nvidia_driver_branch": "58"}, "nvidia_driver_branch",
     "a version like '580'"),
    ("ssh_strict-choice", {"ssh_strict_host_key_checking": "maybe"},
     "ssh_strict_host_key_checking", "accept-new"),
    # --- host paths: absolute, normalised, shell-safe; managed folders never system folders
    ("prefix-relative", {"python_env_prefix": "opt/venv"}, "python_env_prefix", "absolute path"),
    ("prefix-tmp", {"python_env_prefix": "/tmp"}, "python_env_prefix", "system folder"),
    ("prefix-usr", {"python_env_prefix": "/usr"}, "python_env_prefix", "system folder"),
    ("prefix-root", {"python_env_prefix": "/"}, "python_env_prefix", "system folder"),
    ("prefix-opt", {"python_env_prefix": "/opt"}, "python_env_prefix", "system folder"),
    ("prefix-home", {"python_env_prefix": "/home"}, "python_env_prefix", "system folder"),
    ("prefix-under-tmp", {"python_env_prefix": "/tmp/venv"}, "python_env_prefix",
     "every local user can write"),
    ("prefix-under-dev-shm", {"python_env_prefix": "/dev/shm/venv"}, "python_env_prefix",
     "every local user can write"),
    ("prefix-dotdot", {"python_env_prefix": "/opt/dlws/../venv"}, "python_env_prefix",
     "write it as '/opt/venv'"),
    ("prefix-double-slash", {"python_env_prefix": "/opt//venv"}, "python_env_prefix",
     "not normalised"),
    ("prefix-trailing-slash", {"python_env_prefix": "/opt/venv/"}, "python_env_prefix",
     "not normalised"),
    ("prefix-semicolon", {"python_env_prefix": "/opt/venv;touch /x"}, "python_env_prefix",
     "may hold only"),
    ("prefix-newline", {"python_env_prefix": "/opt/v\nenv"}, "python_env_prefix",
     "control character"),
    ("prefix-dollar", {"python_env_prefix": "/opt/$(touch x)"}, "python_env_prefix",
     "may hold only"),
    ("prefix-space", {"python_env_prefix": "/opt/my venv"}, "python_env_prefix",
     "may hold only"),
    ("wheelhouse_dir-etc", {"python_env_wheelhouse_dir": "/etc"}, "python_env_wheelhouse_dir",
     "system folder"),
    ("lock_dir-var", {"python_env_lock_dir": "/var"}, "python_env_lock_dir", "system folder"),
    ("ca_dir-system", {"base_ca_dir": "/usr/local/share/ca-certificates"}, "base_ca_dir",
     "system folder"),
    ("cache_pip_dir-tmp", {"cache_pip_dir": "/tmp/pip"}, "cache_pip_dir",
     "every local user can write"),
    ("cache-pip-dir-relative", {"cache_pip_dir": "var/cache/dlws"}, "cache_pip_dir",
     "absolute path"),
    ("data_dir-relative", {"hardware_data_dir": "data"}, "hardware_data_dir", "absolute path"),
    ("data_dir-backtick", {"hardware_data_dir": "/data/`touch x`"}, "hardware_data_dir",
     "may hold only"),
    ("train_check-usr-bin", {"frameworks_train_check_path": "/usr/bin/python3"},
     "frameworks_train_check_path", "where dpkg installs commands"),
    ("train_check-folder", {"frameworks_train_check_path": "/usr/local/bin"},
     "frameworks_train_check_path", "system folder"),
    ("mnist-relative", {"verify_mnist_path": "mnist.npz"}, "verify_mnist_path", "absolute path"),
    ("ca_bundle-quote", {"python_env_ca_bundle": "/etc/ssl/certs/x'.crt"},
     "python_env_ca_bundle", "may hold only"),
    # --- URLs: scheme, host, no whitespace/quotes/control characters, credentials where used
    ("proxy-no-scheme", {"base_http_proxy": "proxy:3128"}, "base_http_proxy", "http(s)://"),
    ("proxy-space", {"base_http_proxy": "http://proxy :3128"}, "base_http_proxy",
     "percent-encode"),
    ("proxy-newline-hook", {"base_https_proxy": "http://p:3128\";\nAPT::Update::Pre-Invoke "
                            "{\"touch /x\"};"}, "base_https_proxy", "control character"),
    ("proxy-quote", {"base_http_proxy": "http://p:3128/'$(touch /x)'"}, "base_http_proxy",
     "percent-encode"),
    ("proxy-ftp", {"base_http_proxy": "ftp://proxy:21"}, "base_http_proxy", "http(s)://"),
    ("proxy-no-host", {"base_http_proxy": "http://"}, "base_http_proxy", "names no host"),
    ("proxy-bad-port", {"base_http_proxy": "http://proxy:99999"}, "base_http_proxy",
     "not a valid URL"),
    ("proxy-with-path", {"base_http_proxy": "http://proxy:3128/x"}, "base_http_proxy",
     "has no path"),
    ("mirror-no-scheme", {"base_apt_mirror": "deb.debian.org/debian"}, "base_apt_mirror",
     "http(s)://"),
    ("mirror-bare-scheme", {"base_apt_mirror": "http://"}, "base_apt_mirror", "names no host"),
    ("mirror-newline-trusted", {"base_apt_mirror": "http://m/debian\nTrusted: yes"},
     "base_apt_mirror", "control character"),
    ("mirror-credentials", {"base_apt_mirror": "http://u:secret@m/debian"}, "base_apt_mirror",
     "carries credentials"),
    ("mirror-file", {"base_apt_mirror": "file:///srv/mirror"}, "base_apt_mirror", "http(s)://"),
    ("index-no-scheme", {"python_env_index_url": "pypi.lab/simple"}, "python_env_index_url",
     "http(s)://"),
    ("index-injection", {"python_env_index_url": "https://pypi.org/simple;touch /tmp/x"},
     "python_env_index_url", "percent-encode"),
    ("index-backtick", {"python_env_index_url": "https://pypi.org/`touch`"},
     "python_env_index_url", "percent-encode"),
    ("index-double-quote", {"python_env_index_url": 'https://pypi.org/simple"x'},
     "python_env_index_url", "percent-encode"),
    ("index-password-encoded-newline",
     {"python_env_index_url": "https://alice:t0ken%0Amachine@pypi.lab/simple"},
     "python_env_index_url", "control characters"),
    ("extra-index-password-encoded-quote",
     {"python_env_extra_index_urls": ["https://alice:t0ken%22@pypi.lab/simple"]},
     "python_env_extra_index_urls", "quotes"),
    ("extra-index-bad-item", {"python_env_extra_index_urls": ["https://ok/simple", "nope"]},
     "python_env_extra_index_urls", "http(s)://"),
    ("extra-index-twice", {"python_env_extra_index_urls": ["https://a/simple"] * 2},
     "python_env_extra_index_urls", "listed twice"),
    ("cache-proxy-no-scheme", {"cache_apt_proxy": "cache:3142"}, "cache_apt_proxy", "http://"),
    ("cache-proxy-credentials", {"cache_apt_proxy": "http://u:p@cache:3142"}, "cache_apt_proxy",
     "carries credentials"),
    ("cache-proxy-https", {"cache_apt_proxy": "https://cache:3142"}, "cache_apt_proxy",
     "http://"),
    ("no_proxy-space", {"base_no_proxy": "localhost, 10.0.0.1"}, "base_no_proxy",
     "without spaces"),
    ("no_proxy-quote", {"base_no_proxy": "localhost'"}, "base_no_proxy", "without spaces"),
    # --- user names: portable, never root or a system account
    ("lab-user-nobody", {"base_lab_users": ["nobody"]}, "base_lab_users", "system account"),
    ("lab-user-root", {"base_lab_users": ["root"]}, "base_lab_users", "system account"),
    ("lab-user-daemon", {"base_lab_users": ["daemon"]}, "base_lab_users", "system account"),
    ("lab-user-systemd", {"base_lab_users": ["systemd-network"]}, "base_lab_users",
     "system account"),
    ("lab-user-video-group", {"base_lab_users": ["video"]}, "base_lab_users", "system account"),
    ("lab-user-upper", {"base_lab_users": ["Alice"]}, "base_lab_users", "portable user name"),
    ("lab-user-option", {"base_lab_users": ["-alice"]}, "base_lab_users", "portable user name"),
    ("lab-user-injection", {"base_lab_users": ["alice;touch x"]}, "base_lab_users",
     "portable user name"),
    ("lab-user-long", {"base_lab_users": ["a" * 40]}, "base_lab_users", "at most 32"),
    ("lab-user-twice", {"base_lab_users": ["alice", "alice"]}, "base_lab_users", "listed twice"),
    ("docker-user-root", {"containers_docker_users": ["root"]}, "containers_docker_users",
     "system account"),
    ("ssh_user-injection", {"ssh_user": "admin;id"}, "ssh_user", "portable user name"),
    ("ssh_hostname-injection", {"ssh_hostname": "host;id"}, "ssh_hostname",
     "not an IP address or a host name"),
    # --- Debian packages and pip requirements: never an option
    ("apt-option", {"base_extra_packages": ["--allow-unauthenticated"]}, "base_extra_packages",
     "is an option"),
    ("apt-short-option", {"base_extra_packages": ["-o"]}, "base_extra_packages", "is an option"),
    ("apt-upper", {"base_extra_packages": ["Htop"]}, "base_extra_packages", "Debian Policy"),
    ("apt-injection", {"base_extra_packages": ["htop;touch /x"]}, "base_extra_packages",
     "Debian Policy"),
    ("apt-one-letter", {"base_extra_packages": ["h"]}, "base_extra_packages", "Debian Policy"),
    ("apt-newline", {"base_extra_packages": ["htop\nvim"]}, "base_extra_packages",
     "control character"),
    ("apt-twice", {"base_extra_packages": ["htop", "htop"]}, "base_extra_packages",
     "listed twice"),
    ("pip-option", {"python_env_extra_packages": ["--index-url=https://evil/simple"]},
     "python_env_extra_packages", "is an option"),
    ("pip-requirements-file", {"python_env_extra_packages": ["-r /etc/shadow"]},
     "python_env_extra_packages", "is an option"),
    ("pip-url", {"python_env_extra_packages": ["numpy @ https://evil/numpy.whl"]},
     "python_env_extra_packages", "names a URL"),
    ("pip-marker", {"python_env_extra_packages": ["numpy; python_version > '3'"]},
     "python_env_extra_packages", "environment marker"),
    ("pip-empty-version", {"python_env_extra_packages": ["numpy=="]},
     "python_env_extra_packages", "is not a pip requirement"),
    ("pip-garbage", {"python_env_extra_packages": ["not a requirement!"]},
     "python_env_extra_packages", "is not a pip requirement"),
    ("pip-git", {"python_env_extra_packages": ["git+https://evil/x.git"]},
     "python_env_extra_packages", "is not a pip requirement"),
    ("pip-injection", {"python_env_extra_packages": ["numpy;touch /x"]},
     "python_env_extra_packages", "is not a pip requirement"),
    # --- GPUs and contradictions
    # the containers role, and the NGC route that needs it
    ("containers-engine-choice", {"containers_engine": "lxc"}, "containers_engine",
     "allowed: 'none', 'docker', 'podman', 'both'"),
    ("containers-gpu-mode-choice", {"containers_gpu_mode": "hook"}, "containers_gpu_mode",
     "allowed: 'cdi', 'legacy'"),
    ("containers-subid-count-small", {"containers_subid_count": 1000},
     "containers_subid_count", "out of range"),
    ("containers-source-typo", {"containers_engine_source": "docker-repo"},
     "containers_engine_source", "did you mean 'docker_repo'"),
    ("docker-user-option", {"containers_docker_users": ["-o root"]}, "containers_docker_users",
     "portable user name"),
    ("daemon-json-not-json", {"containers_daemon_json": {"hosts": {1, 2}}},
     "containers_daemon_json", "expected list"),
    ("daemon-json-nvidia-runtime", {"containers_daemon_json": {"runtimes": {"nvidia": {}}}},
     "containers_daemon_json", "nvidia-ctk runtime configure"),
    ("toolkit-version-word", {"containers_toolkit_version": "latest"},
     "containers_toolkit_version", "like '1.18.0-1'"),
    ("gpu-check-image-option", {"containers_gpu_check_image": "--privileged"},
     "containers_gpu_check_image", "image reference"),
    ("tensorflow-ngx", {"frameworks_tensorflow": "ngx"}, "frameworks_tensorflow",
     "'ngc'"),
    # GPUs
    ("gpu-without-model", {"gpu_count": 2}, "gpu_model", "set it to the name nvidia-smi prints"),
    ("gpu-model-without-count", {"gpu_model": "NVIDIA L4"}, "gpu_count",
     "set gpu_count to the number of GPUs"),
    ("same-folder-twice", {"python_env_lock_dir": "/opt/dlws/venv"}, "python_env_lock_dir",
     "is also python_env_prefix; give each its own folder"),
    ("cache-is-the-venv", {"cache_pip_dir": "/opt/dlws/venv"}, "cache_pip_dir",
     "is also python_env_prefix"),
    ("gpu-unknown-model", {"gpu_count": 1, "gpu_model": "NVIDIA GeForce GTX 9999"}, "gpu_model",
     "did you mean"),
    ("gpu-unknown-pci-id", {"gpu_count": 1, "gpu_model": "10de:ffff"}, "gpu_model",
     "lspci -nn"),
    ("gpu-model-backtick", {"gpu_count": 1, "gpu_model": "NVIDIA `touch x`"}, "gpu_model",
     "not a GPU name"),
    # --- files on the controller: what each must be
    ("wheelhouse-missing", {"python_env_wheelhouse": f"{MISSING}/wheels"},
     "python_env_wheelhouse", "does not exist on the controller; fix the path"),
    ("wheelhouse-is-a-file", {"python_env_wheelhouse": f"{TMP}/not-a-cert.pem"},
     "python_env_wheelhouse", "not a folder"),
    ("wheelhouse-empty", {"python_env_wheelhouse": f"{TMP}/empty"}, "python_env_wheelhouse",
     "holds no *.whl files"),
    ("wheelhouse-bad-wheel-name", {"python_env_wheelhouse": f"{TMP}/badwheels"},
     "python_env_wheelhouse", "not a valid wheel file name"),
    ("ca-missing", {"base_extra_ca_certs": [f"{MISSING}/ca.pem"]}, "base_extra_ca_certs",
     "does not exist on the controller; fix the path"),
    ("ca-directory", {"base_extra_ca_certs": [f"{TMP}/empty"]}, "base_extra_ca_certs",
     "is a folder"),
    ("ca-dev-zero", {"base_extra_ca_certs": ["/dev/zero"]}, "base_extra_ca_certs",
     "not a regular file"),
    ("ca-not-a-certificate", {"base_extra_ca_certs": [f"{TMP}/not-a-cert.pem"]},
     "base_extra_ca_certs", "holds no PEM certificate"),
    ("ca-empty-file", {"base_extra_ca_certs": [f"{TMP}/empty.pem"]}, "base_extra_ca_certs",
     "holds no PEM certificate"),
    ("ca-broken-certificate", {"base_extra_ca_certs": [f"{TMP}/broken-cert.pem"]},
     "base_extra_ca_certs", "not a valid PEM certificate"),
    ("ca-private-key", {"base_extra_ca_certs": [f"{TMP}/key.pem"]}, "base_extra_ca_certs",
     "holds a private key"),
    ("ca-binary", {"base_extra_ca_certs": [f"{TMP}/binary.pem"]}, "base_extra_ca_certs",
     "not a PEM file"),
    ("ssh_key-missing", {"ssh_key": f"{MISSING}/id_ed25519"}, "ssh_key",
     "does not exist on the controller; fix the path"),
    ("ssh_key-directory", {"ssh_key": f"{TMP}/empty"}, "ssh_key", "is a folder"),
    ("ssh_key-public-key", {"ssh_key": f"{TMP}/id.pub"}, "ssh_key", "not a private key file"),
    ("ssh_config-missing", {"ssh_config_file": f"{MISSING}/ssh_config"}, "ssh_config_file",
     "does not exist on the controller; fix the path"),
    ("known_hosts-directory", {"ssh_known_hosts_file": f"{TMP}/empty"}, "ssh_known_hosts_file",
     "is a folder"),
]

# Refused while the host is planned (the solver's cited table; the hash locks): still before
# any operation, but after the inventory check, so each runs alone.
PLAN_CASES = [
    # A branch without the GPU (the H200 is first listed by R550): refused while planning.
    ("h200-driver-535", {"gpu_count": 1, "gpu_model": "NVIDIA H200",
                         "nvidia_driver_branch": "535"}, "nvidia_driver_branch",
     "set nvidia_driver_branch to 550 or newer"),
    ("cuda-12.7", {"cuda_version": "12.7"}, "cuda_version", "known: "),
    ("tensorflow-1.0", {"frameworks_tensorflow": "1.0"}, "frameworks_tensorflow", "known: "),
    ("torch-1.0", {"frameworks_torch": "1.0"}, "frameworks_torch", "known: "),
    ("driver-123", {"nvidia_driver_branch": "123"}, "nvidia_driver_branch", "known: "),
    # conflicting sources: Debian 12's archive has no driver for Blackwell
    ("distro-driver-blackwell",
     {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090", "nvidia_driver_source": "distro"},
     "nvidia_driver_source", "set nvidia_driver_source to 'cuda_repo'"),
    # the NGC route: a GPU host's, with a container engine
    ("tensorflow-ngc-no-gpu", {"frameworks_tensorflow": "ngc"}, "frameworks_tensorflow",
     "set frameworks_tensorflow to 'auto'"),
    ("tensorflow-ngc-no-engine", {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090",
                                  "nvidia_driver_source": "cuda_repo",
                                  "frameworks_tensorflow": "ngc"},
     "frameworks_tensorflow", "set containers_engine = 'docker'"),
    # hash pinning on, and no lock for what this host would install
    ("hash-lock-missing", {"python_env_require_hashes": True}, "python_env_require_hashes",
     "`dlws lock INVENTORY`"),
    # proof over time and across machines: burn-in bars, the multi-node group's network
    ("burn_in-throttle-over-1", {"verify_burn_in_max_throttle_fraction": 2.0},
     "verify_burn_in_max_throttle_fraction", "in (0, 1]"),
    ("burn_in-disk-zero", {"verify_burn_in_disk_mib": 0}, "verify_burn_in_disk_mib",
     "1 or more"),
    ("network-port-out-of-range", {"network_rendezvous_port": 70000},
     "network_rendezvous_port", "a TCP port from 1 to 65535"),
    ("network-min-gbit-str", {"network_min_gbit": "10"}, "network_min_gbit", "expected"),
    ("typo-network", {"network_min_gibt": 10}, "network_min_gibt",
     "did you mean 'network_min_gbit'"),
]

# A host in two groups that give it different values (group data; listings with host data).
CONFLICT_INVENTORY = """
gpu_nodes = ([("@fake/ws-groups", FAKE)], {"verify_epochs": 3})
cpu_nodes = ([("@fake/ws-groups", FAKE)], {"verify_epochs": 4})
lab_a = [("@fake/ws-listed", {**FAKE, "gpu_count": 0})]
lab_b = [("@fake/ws-listed", {**FAKE, "gpu_count": 2, "gpu_model": "NVIDIA L4"})]
"""
CONFLICT_CASES = [
    ("@fake/ws-groups", "verify_epochs", "make the groups agree"),
    ("@fake/ws-listed", "gpu_count", "give the host's data in one listing only"),
]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released): a host that must not
    answer, without traffic off this machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def controller_files(folder: Path) -> Path:
    """The controller files the cases name: each one thing a path key must not be."""
    (folder / "empty").mkdir(parents=True)
    (folder / "badwheels").mkdir()
    (folder / "badwheels" / "numpy.whl").write_text("not a wheel")
    (folder / "not-a-cert.pem").write_text("hello, I am not a certificate\n")
    (folder / "empty.pem").write_text("")
    (folder / "broken-cert.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nTUlJQm9rZW4=\n-----END CERTIFICATE-----\n")
    (folder / "key.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nTUlJQm9rZW4=\n-----END PRIVATE KEY-----\n")
    (folder / "binary.pem").write_bytes(bytes(range(256)))
    (folder / "id.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI user@lab\n")
    return folder


def _fill(value, tmp: Path):
    if isinstance(value, str):
        return value.replace(TMP, str(tmp))
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    return value


def write_inventory(tmp_path: Path, hosts: dict[str, dict], extra: str = "") -> Path:
    inventory = tmp_path / "inventory.py"
    entries = ",\n".join(f"    ({name!r}, {{**FAKE, **{data!r}}})" for name, data in hosts.items())
    inventory.write_text(f"nan = float('nan')\ninf = float('inf')\nFAKE = {FAKE_DEBIAN_12!r}\n"
                         f"hosts = [\n{entries},\n]\n{extra}")
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


def test_at_least_100_cases():
    assert len(CASES) + len(PLAN_CASES) + len(CONFLICT_CASES) >= 100


@pytest.fixture(scope="module")
def fleet_refusal(tmp_path_factory) -> tuple[str, subprocess.CompletedProcess]:
    """Every broken case as one host of one inventory, deployed once through pyinfra's CLI.

    The SSH hosts point at 127.0.0.1 on a closed port: a connection attempt would fail there,
    so a clean refusal proves the check ran before pyinfra connected.
    """
    tmp = tmp_path_factory.mktemp("broken")
    files = controller_files(tmp / "files")
    hosts = {}
    for case, data, _key, _fix in CASES:
        name = _host_of(case, data)
        extra = {"ssh_hostname": "127.0.0.1", "ssh_port": closed_port(),
                 "ssh_connect_retries": 0} if not name.startswith("@") else {}
        hosts[name] = {**extra, **_fill(data, files)}
    inventory = write_inventory(tmp, hosts, CONFLICT_INVENTORY)
    return inventory.read_text(), deploy(inventory)


def _host_of(case: str, data: dict) -> str:
    return f"ssh-{case}" if any(k.startswith(("ssh_", "_")) for k in data) else f"@fake/{case}"


@pytest.mark.parametrize(("case", "data", "key", "fix"), CASES, ids=[c[0] for c in CASES])
def test_broken_host_data_is_refused(fleet_refusal, case, data, key, fix):
    _, out = fleet_refusal
    assert "Connected" not in out.stdout + out.stderr, "pyinfra connected before the refusal"
    assert_refused(out, _host_of(case, data), key, fix)


def test_passwords_are_not_shown(fleet_refusal):
    _, out = fleet_refusal
    assert "not shown: a secret" in out.stdout + out.stderr
    assert "hunter2" not in out.stdout + out.stderr


@pytest.mark.parametrize(("host", "key", "fix"), CONFLICT_CASES, ids=[c[0] for c in CONFLICT_CASES])
def test_contradicting_groups_are_refused(fleet_refusal, host, key, fix):
    assert_refused(fleet_refusal[1], host, key, fix)


@pytest.mark.parametrize(("data", "key", "fix"), [c[1:] for c in PLAN_CASES],
                         ids=[c[0] for c in PLAN_CASES])
def test_unplannable_host_data_is_refused(tmp_path, data, key, fix):
    assert_refused(deploy(write_inventory(tmp_path, {HOST: data})), HOST, key, fix)


def test_each_case_alone_is_refused_too(tmp_path):
    """The fleet run above could hide a case behind another's refusal: one alone, as users do."""
    case, data, key, fix = next(c for c in CASES if c[0] == "ssh_key-directory")
    files = controller_files(tmp_path)
    out = deploy(write_inventory(tmp_path, {"ws-ssh": {"ssh_hostname": "127.0.0.1",
                                                       "ssh_port": closed_port(),
                                                       **_fill(data, files)}}))
    assert_refused(out, "ws-ssh", key, fix)


def test_bin_dlws_gives_the_same_message(tmp_path):
    """bin/dlws lock (which plans the fleet through pyinfra) and verify refuse the same way."""
    inventory = write_inventory(tmp_path, {HOST: {"python_env_prefix": "/usr"}})
    for command in (["lock", "--inventory", str(inventory)],
                    ["verify", "--inventory", str(inventory), "--run-dir", str(tmp_path / "r")]):
        out = subprocess.run([str(Path(sys.executable).parent / "dlws"), *command], cwd=ROOT,
                             capture_output=True, text=True, timeout=180)
        text = out.stdout + out.stderr
        assert out.returncode != 0, text[-2000:]
        assert "Traceback" not in text, text[-3000:]
        assert f"host {HOST}: python_env_prefix: '/usr' is a system folder" in text, text[-3000:]


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


@pytest.mark.parametrize("name", ["ws-01;touch /tmp/x", "ws 01", "$(id)"],
                         ids=["semicolon", "space", "dollar"])
def test_a_hostile_host_name_is_refused(tmp_path, name):
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"hosts = [({name!r}, {{'ssh_hostname': '127.0.0.1', "
                         f"'ssh_port': {closed_port()}}})]\n")
    assert_refused(deploy(inventory), name, "host name", "rename the host")


# Broken Ansible inventories, deployed through inventory/ansible.py as a lab would: each is
# refused while the inventory loads, before pyinfra connects anywhere, naming the file (and
# line), the host and the variable.
def _vaulted(text: str) -> str:
    from ansible.parsing.vault import VaultLib, VaultSecret

    ciphertext = VaultLib([("default", VaultSecret(b"not given"))]).encrypt(text).decode()
    return "!vault |\n" + "".join(f"  {line}\n" for line in ciphertext.splitlines())


INI = "[gpu]\nws01 ansible_host=127.0.0.1 ansible_port=9\n"  # never answers: a closed local port
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
