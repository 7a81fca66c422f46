"""Hostile inventories of every kind the issue found, through the real CLI: refused before
pyinfra connects, each message naming the host, the key and the fix, never a traceback.

The hosts are pyinfra's @fake connector and one SSH host at 127.0.0.1 on a closed port (a
connection attempt would fail there, so a clean refusal proves the check ran first).
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
FAKE = {
    "python_env_require_hashes": False,
    "fake_delay": 0,
    "fake_delay_jitter": 0,
    "fake_responses": {
        "cat /etc/os-release": ["ID=debian", 'VERSION_ID="12"', "VERSION_CODENAME=bookworm"],
        "uname -m": "x86_64",
    },
}
PAYLOAD = "fe80::1%$(id>/tmp/x)"
DISK = "/dev/disk/by-id/nvme-LAB_DISK_1"

# (id, host data, the key the message names, a fragment of the fix). One host per case.
CASES = [
    # --- a root shell from host data: an IPv6 zone id carrying a command
    ("zone-id-payload", {"notebooks_address": PAYLOAD}, "notebooks_address", "zone id"),
    ("zone-id-interface", {"notebooks_address": "fe80::1%eth0"}, "notebooks_address",
     "zone id"),
    # --- a trailing newline ($ matches before it): every key the issue listed
    ("nl-lab-user", {"base_lab_users": ["x", "mallory\n"]}, "base_lab_users",
     "control character"),
    ("nl-lab-group", {"base_lab_group": "lab\n"}, "base_lab_group", "control character"),
    ("nl-notebooks-group", {"notebooks_group": "lab\n"}, "notebooks_group",
     "control character"),
    ("nl-hub-version", {"notebooks_jupyterhub_version": "6.1.1\n"},
     "notebooks_jupyterhub_version", "control character"),
    ("nl-docker-user", {"containers_docker_users": ["alice\n"]}, "containers_docker_users",
     "control character"),
    ("nl-image", {"containers_gpu_check_image": "ubuntu:24.04\n"},
     "containers_gpu_check_image", "control character"),
    ("nl-toolkit", {"containers_toolkit_version": "1.18.0-1\n"}, "containers_toolkit_version",
     "control character"),
    ("nl-network-group", {"network_multinode_group": "rack\n"}, "network_multinode_group",
     "control character"),
    ("nl-network-address", {"network_address": "10.0.0.5\n"}, "network_address",
     "control character"),
    ("nl-interface", {"network_interface": "eth1\n"}, "network_interface", "control character"),
    ("nl-mount", {"storage_disks": [{"device": DISK, "mount": "/data\n"}]}, "storage_disks",
     "control character"),
    ("nl-options", {"storage_disks": [{"device": DISK, "mount": "/data",
                                       "options": "defaults\n"}]}, "storage_disks",
     "control character"),
    ("nl-serial", {"storage_disks": [{"serial": "S7KG\n", "mount": "/data"}]}, "storage_disks",
     "control character"),
    ("nl-tensorflow", {"frameworks_tensorflow": "2.21.0\n"}, "frameworks_tensorflow",
     "control character"),
    # --- digits and letters of other scripts (\d and \w match them)
    ("unicode-hub-version", {"notebooks_jupyterhub_version": "٦.١.١"},
     "notebooks_jupyterhub_version", "not ASCII"),
    ("unicode-image-tag", {"containers_gpu_check_image": "ubuntu:２４.04"},
     "containers_gpu_check_image", "not ASCII"),
    # --- URL hosts: one script, one '@', no control character hidden by percent-encoding
    ("url-cyrillic-i", {"python_env_index_url": "https://іndex.lab.example/simple"},
     "python_env_index_url", "mixes CYRILLIC and LATIN"),
    ("url-cyrillic-o", {"base_apt_mirror": "http://mirrоr.lab.example/debian"},
     "base_apt_mirror", "write the host in ASCII"),
    ("url-idn", {"python_env_index_url": "https://bücher.example/simple"},
     "python_env_index_url", "xn--bcher-kva.example"),
    ("url-two-at", {"python_env_index_url": "https://u:p@index.lab.example@evil.example/simple"},
     "python_env_index_url", "more than one '@'"),
    ("url-encoded-newline", {"python_env_index_url": "https://u:p%0a@index.lab.example/simple"},
     "python_env_index_url", "percent-encoded control characters"),
    ("url-credentials-on-mirror", {"base_apt_mirror": "http://u:p@mirror.lab.example/debian"},
     "base_apt_mirror", "carries credentials"),
    # --- groups that grant privileges
    ("group-admin", {"base_lab_group": "admin"}, "base_lab_group", "grants root"),
    ("group-lxd", {"notebooks_group": "lxd"}, "notebooks_group", "grants root"),
    ("group-libvirt", {"base_lab_group": "libvirt"}, "base_lab_group", "grants root"),
    ("group-ssl-cert", {"notebooks_group": "ssl-cert"}, "notebooks_group", "grants root"),
    ("group-docker", {"base_lab_group": "docker"}, "base_lab_group", "grants root"),
    # --- daemon.json: only the settings dlws allows, each with its domain
    ("daemon-tcp", {"containers_daemon_json": {"hosts": ["tcp://0.0.0.0:2375"]}},
     "containers_daemon_json", "unix:///run/docker.sock"),
    ("daemon-pidfile", {"containers_daemon_json": {"pidfile": "/etc/shadow"}},
     "containers_daemon_json", "remove it"),
    ("daemon-data-root-tmp", {"containers_daemon_json": {"data-root": "/tmp/docker"}},
     "containers_daemon_json", "every local user can write"),
    ("daemon-runtime-tmp", {"containers_daemon_json": {"runtimes": {
        "crun": {"path": "/tmp/crun"}}}}, "containers_daemon_json", "every local user"),
    ("daemon-proxies", {"containers_daemon_json": {"proxies": {
        "http-proxy": "http://u:secret@proxy:3128"}}}, "containers_daemon_json",
     "base_http_proxy"),
    ("daemon-insecure-all", {"containers_daemon_json": {"insecure-registries": ["0.0.0.0/0"]}},
     "containers_daemon_json", "registry"),
    ("daemon-nvidia-upper", {"containers_daemon_json": {"runtimes": {
        "NVIDIA": {"path": "/usr/bin/nvidia-container-runtime"}}}}, "containers_daemon_json",
     "nvidia-ctk runtime configure"),
    # --- storage mount points: normalised, against the one list of system folders
    *[(f"mount-{name}", {"storage_disks": [{"device": DISK, "mount": mount}]}, "storage_disks",
       fix) for name, mount, fix in [
        ("etc-dot", "/etc/.", "write it as '/etc'"), ("etc-double", "//etc", "write it as"),
        ("dot-etc", "/./etc", "write it as '/etc'"), ("usr-lib", "/usr/lib", "system folder"),
        ("boot-efi", "/boot/efi", "system folder"), ("var-lib", "/var/lib", "system folder"),
        ("etc-apt", "/etc/apt", "system folder"), ("tmp-data", "/tmp/data", "every local user"),
        ("dev", "/dev", "system folder")]],
    ("mount-over-venv", {"storage_disks": [{"device": DISK, "mount": "/opt/dlws/venv"}]},
     "storage_disks", "is also python_env_prefix; give each its own folder"),
    ("mount-over-lab-folders", {"storage_disks": [{"device": DISK, "mount": "/opt/dlws"}]},
     "storage_disks", "one inside the other"),
    # --- managed folders that collide, or that are the system's
    ("prefix-is-venv", {"notebooks_prefix": "/opt/dlws/venv"}, "notebooks_prefix",
     "is also python_env_prefix"),
    ("prefix-etc-ssh", {"notebooks_prefix": "/etc/ssh"}, "notebooks_prefix", "system folder"),
    ("prefix-inside-venv", {"notebooks_prefix": "/opt/dlws/venv/hub"}, "notebooks_prefix",
     "one inside the other"),
    # --- numbers: finite, with an upper bound
    ("timeout-10e30", {"network_timeout_s": 10**30}, "network_timeout_s", "at most 86400"),
    ("burn-in-disk-10e15", {"verify_burn_in_disk_mib": 10**15}, "verify_burn_in_disk_mib",
     "at most"),
    ("gbit-inf", {"network_min_gbit": float("inf")}, "network_min_gbit", "not a finite number"),
    ("daily-minutes-inf", {"frameworks_daily_burn_in_minutes": float("inf")},
     "frameworks_daily_burn_in_minutes", "not a finite number"),
    ("floor-nan", {"storage_disks": [{"device": DISK, "mount": "/data",
                                      "min_free_gib": float("nan")}]}, "storage_disks",
     "not a finite number"),
    ("floor-1e309", {"storage_disks": [{"device": DISK, "mount": "/data",
                                        "min_read_mib_s": float("1e309")}]}, "storage_disks",
     "not a finite number"),
    ("string-5000", {"network_multinode_group": "g" * 5000}, "network_multinode_group",
     "at most"),
    ("string-100000", {"gpu_model": "N" * 100_000, "gpu_count": 1}, "gpu_model", "at most"),
    # --- system paths where a data folder or file is expected
    ("data-dir-proc", {"hardware_data_dir": "/proc"}, "hardware_data_dir", "system folder"),
    ("mnist-dev-zero", {"verify_mnist_path": "/dev/zero"}, "verify_mnist_path",
     "system folder"),
    # --- contradictions, naming both keys
    ("plain-http-everywhere", {"notebooks_plain_http": True}, "notebooks_address",
     "notebooks_plain_http"),
    ("mirror-unmanaged", {"base_apt_mirror": "http://mirror.lab.example/debian",
                          "base_apt_manage_sources": False}, "base_apt_mirror",
     "base_apt_manage_sources"),
    ("memory-above-model", {"gpu_count": 1, "gpu_model": "NVIDIA L4",
                            "gpu_min_memory_gib": 80}, "gpu_min_memory_gib", "gpu_model"),
    ("framework-not-installed", {"verify_frameworks": ["torch"], "frameworks_torch": "none"},
     "verify_frameworks", "frameworks_torch"),
]
SSH_CASE = ("ssh-zone-id-payload", {"notebooks_address": PAYLOAD}, "notebooks_address",
            "zone id")


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pyinfra(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([PYINFRA, "-y", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def write_inventory(folder: Path, hosts: dict[str, dict]) -> Path:
    inventory = folder / "inventory.py"
    lines = ",\n".join(f"    ({name!r}, {{**FAKE, **{data!r}}})" for name, data in hosts.items())
    inventory.write_text(f"nan = float('nan')\ninf = float('inf')\nFAKE = {FAKE!r}\n"
                         f"hosts = [\n{lines},\n]\n")
    return inventory


def assert_refused(out: subprocess.CompletedProcess, host: str, key: str, fix: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode != 0, f"the deploy was not refused:\n{text[-3000:]}"
    assert "Traceback" not in text, f"a traceback instead of a message:\n{text[-3000:]}"
    assert "Connecting to hosts" not in text, f"pyinfra connected before refusing:\n{text}"
    assert "Starting operation" not in text, f"operations ran:\n{text[-3000:]}"
    lines = [line for line in text.splitlines() if f"host {host}: {key}:" in line]
    assert lines, f"no message naming host {host} and key {key}:\n{text[-6000:]}"
    assert any(fix in line for line in lines), f"no message gives the fix {fix!r}:\n{lines}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> subprocess.CompletedProcess:
    """Every case as one host of one inventory (and an SSH host), deployed once."""
    folder = tmp_path_factory.mktemp("hostile")
    hosts = {f"@fake/{case}": data for case, data, _, _ in CASES}
    hosts["ws-ssh"] = {"ssh_hostname": "127.0.0.1", "ssh_port": closed_port(),
                       "ssh_connect_retries": 0, **SSH_CASE[1]}
    return pyinfra(str(write_inventory(folder, hosts)), "deploy/workstation.py")


@pytest.mark.parametrize(("case", "key", "fix"), [(c[0], c[2], c[3]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_value_is_refused_before_connecting(fleet, case, key, fix):
    assert_refused(fleet, f"@fake/{case}", key, fix)


def test_an_ssh_host_is_refused_before_it_is_reached(fleet):
    assert_refused(fleet, "ws-ssh", SSH_CASE[2], SSH_CASE[3])


@pytest.mark.parametrize("case", ["zone-id-payload", "mount-etc-dot"])
def test_each_alone_is_refused_too(tmp_path, case):
    """The fleet run could hide a case behind another's refusal: the two the issue ran for
    real, each alone."""
    _, data, key, fix = next(c for c in CASES if c[0] == case)
    out = pyinfra(str(write_inventory(tmp_path, {"@fake/ws-01": data})), "deploy/workstation.py")
    assert_refused(out, "@fake/ws-01", key, fix)


def test_plan_and_lock_refuse_the_same_way(tmp_path):
    inventory = write_inventory(tmp_path, {"@fake/ws-01": {"notebooks_address": PAYLOAD}})
    assert_refused(pyinfra(str(inventory), "deploy/plan.py"), "@fake/ws-01",
                   "notebooks_address", "zone id")
    out = subprocess.run([str(Path(sys.executable).parent / "dlws"), "lock", "--inventory",
                          str(inventory)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert_refused(out, "@fake/ws-01", "notebooks_address", "zone id")


# Ansible: the same values in a group_vars file, deployed through inventory/ansible.py.
ANSIBLE_VARS = """\
notebooks_address: "fe80::1%$(id>/tmp/x)"
base_lab_group: admin
python_env_index_url: "https://u:p@index.lab.example@evil.example/simple"
network_timeout_s: 1000000000000000000000000000000
storage_disks:
  - {device: /dev/disk/by-id/nvme-LAB_DISK_1, mount: /etc/.}
containers_daemon_json:
  hosts: ["tcp://0.0.0.0:2375"]
"""
ANSIBLE_EXPECTED = [("notebooks_address", "zone id"), ("base_lab_group", "grants root"),
                    ("python_env_index_url", "more than one '@'"),
                    ("network_timeout_s", "at most 86400"),
                    ("storage_disks", "write it as '/etc'"),
                    ("containers_daemon_json", "unix:///run/docker.sock")]


@pytest.fixture(scope="module")
def ansible_run(tmp_path_factory) -> subprocess.CompletedProcess:
    folder = tmp_path_factory.mktemp("ansible")
    (folder / "hosts.ini").write_text(
        f"[lab]\nws-01 ansible_host=127.0.0.1 ansible_port={closed_port()}\n")
    (folder / "group_vars").mkdir()
    (folder / "group_vars" / "lab.yml").write_text(ANSIBLE_VARS)
    env = {"DLWS_ANSIBLE_INVENTORY": str(folder / "hosts.ini")}
    return pyinfra("inventory/ansible.py", "deploy/workstation.py", env=env)


@pytest.mark.parametrize(("key", "fix"), ANSIBLE_EXPECTED, ids=[k for k, _ in ANSIBLE_EXPECTED])
def test_ansible_group_vars_are_refused(ansible_run, key, fix):
    text = ansible_run.stdout + ansible_run.stderr
    assert ansible_run.returncode != 0, text[-3000:]
    assert "Traceback" not in text and "Connecting to hosts" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if f"host ws-01: {key}:" in line]
    assert lines and any(fix in line for line in lines), f"{key}: {fix!r}:\n{text[-6000:]}"
    assert any("group_vars/lab.yml" in line for line in lines), lines


# --limit: only the selected hosts are read and validated, for pyinfra inventories too.
def test_limit_leaves_out_a_broken_host(tmp_path):
    inventory = write_inventory(tmp_path, {
        "@fake/ws-good": {}, "@fake/ws-broken": {"notebooks_address": PAYLOAD}})
    whole = pyinfra(str(inventory), "deploy/plan.py")
    assert_refused(whole, "@fake/ws-broken", "notebooks_address", "zone id")
    limited = pyinfra("--limit", "@fake/ws-good", str(inventory), "deploy/plan.py")
    text = limited.stdout + limited.stderr
    assert limited.returncode == 0, text[-3000:]
    assert "ws-broken" not in text, text[-3000:]


def test_limit_still_refuses_a_selected_broken_host(tmp_path):
    inventory = write_inventory(tmp_path, {
        "@fake/ws-good": {}, "@fake/ws-broken": {"notebooks_address": PAYLOAD}})
    out = pyinfra("--limit", "@fake/ws-broken", str(inventory), "deploy/plan.py")
    assert_refused(out, "@fake/ws-broken", "notebooks_address", "zone id")


def test_verify_limit_reads_only_the_selected_pyinfra_hosts(tmp_path):
    from dlws.inventory.targets import load_targets
    from dlws.roles import all_keys

    inventory = write_inventory(tmp_path, {
        "@docker/ws-good": {}, "@docker/ws-broken": {"notebooks_address": PAYLOAD}})
    with pytest.raises(ValueError, match="host @docker/ws-broken: notebooks_address: .*zone id"):
        load_targets(str(inventory), all_keys())
    targets = load_targets(str(inventory), all_keys(), limit="@docker/ws-good")
    assert [t.name for t in targets] == ["@docker/ws-good"]
