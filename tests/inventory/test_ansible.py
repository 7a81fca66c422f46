"""Ansible inventories of every form, read by ansible-core: what pyinfra and verify get.

Each fixture under tests/fixtures/ansible/ is read three ways: by `ansible-inventory --list`
(Ansible's own view, the reference), by dlws.inventory.ansible (the reader), and by verify's
load_targets, which loads inventory/ansible.py through pyinfra's inventory loader exactly as
`pyinfra inventory/ansible.py deploy/workstation.py` does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ansible import constants as ANSIBLE_CONSTANTS
from ansible.release import __version__ as ANSIBLE_CORE

from dlws.inventory import ansible
from dlws.inventory.ansible import AnsibleHost, AnsibleInventoryError, to_pyinfra
from dlws.inventory.targets import load_targets
from dlws.roles import all_defaults, all_keys

FIXTURES = Path(__file__).parents[1] / "fixtures" / "ansible"
VAULT_PASSWORD = FIXTURES / "vault-password"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SOURCES = {
    "ini": FIXTURES / "ini" / "hosts.ini",
    "yaml-ranges": FIXTURES / "yaml" / "hosts.yml",
    "dir-group_vars-host_vars": FIXTURES / "dir",
    "vault": FIXTURES / "vault",
    "script": FIXTURES / "script" / "inventory.sh",
    "toml": FIXTURES / "toml" / "hosts.toml",
    "plugin": FIXTURES / "plugin" / "lab.generator.yml",
}
RTX_4090 = {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090"}
# The exact pyinfra host (name -> data) of each fixture: what the deploy and verify get.
EXPECTED = {
    "ini": {
        **{f"ws0{i}.lab.example": {"ssh_user": "admin", "_sudo": True, "verify_epochs": 3,
                                   "nvidia_driver_branch": "580", **RTX_4090} for i in (1, 2, 3)},
        "login.lab.example": {"ssh_hostname": "10.0.0.5", "ssh_port": 2222, "gpu_count": 0,
                              "_sudo": True, "verify_epochs": 3},
    },
    "yaml-ranges": {
        **{f"ws0{i}.lab.example": {"ssh_user": "admin", "_sudo": True, "verify_epochs": 4,
                                   **RTX_4090} for i in (1, 2, 3)},
        **{f"dgx-{x}.lab.example": {"ssh_user": "admin", "_sudo": True, "verify_epochs": 4,
                                    "ssh_port": 2200, "gpu_count": 4,
                                    "gpu_model": "NVIDIA H100 80GB HBM3"} for x in "ab"},
        "@docker/dlws-ci": {"_sudo": True, "gpu_count": 0},
        "@local": {"_sudo": True},
    },
    "dir-group_vars-host_vars": {
        "ws01.lab.example": {"ssh_user": "admin", "ssh_key": "~/.ssh/lab_ed25519",
                             "verify_epochs": 3, "nvidia_driver_branch": "580", **RTX_4090},
        "ws02.lab.example": {"ssh_user": "admin", "ssh_key": "~/.ssh/lab_ed25519",
                             "verify_epochs": 3, "nvidia_driver_branch": "580",
                             "ssh_hostname": "10.0.0.12", "gpu_count": 2,
                             "gpu_model": "NVIDIA GeForce RTX 4090"},
        "ws03.lab.example": {"ssh_user": "admin", "ssh_key": "~/.ssh/lab_ed25519",
                             "verify_epochs": 3, "nvidia_driver_branch": "580", **RTX_4090},
        "login.lab.example": {"ssh_user": "admin", "ssh_key": "~/.ssh/lab_ed25519",
                              "verify_epochs": 3},
    },
    "vault": {
        name: {**RTX_4090, "_sudo": True, "_sudo_password": "become-s3cret",
               "base_https_proxy": "http://lab:s3cret@proxy.lab.example:3128"}
        for name in ("ws01.lab.example", "ws02.lab.example")
    },
    "script": {
        "ws01.lab.example": {"ssh_user": "admin", "gpu_count": 1, "gpu_model": "NVIDIA L4"},
        "ws02.lab.example": {"ssh_user": "admin", "ssh_hostname": "10.0.0.12", "ssh_port": 2222,
                             "gpu_count": 2, "gpu_model": "NVIDIA L4"},
        "login.lab.example": {"gpu_count": 0},
    },
    "toml": {
        "ws01.lab.example": {"ssh_user": "admin", **RTX_4090},
        "ws02.lab.example": {"ssh_user": "admin", "ssh_port": 2222, **RTX_4090},
        "login.lab.example": {"gpu_count": 0},
    },
    "plugin": {f"{row}-ws{seat}.lab.example": {"gpu_count": 1, "gpu_model": "NVIDIA L4"}
               for row in "ab" for seat in "12"},
}
# ansible-core 2.17 skips *.ini files inside an inventory directory by default and renders
# templates as strings; 2.19 does neither. The reader reads as 2.19 does on every version
# (ansible._AS_IN_2_19), and so does the reference it is held to.
IGNORE_EXTS = ANSIBLE_CONSTANTS.config.get_config_value_and_origin("INVENTORY_IGNORE_EXTS")[0]
REFERENCE_ENV = {"ANSIBLE_INVENTORY_IGNORE": ",".join(e for e in IGNORE_EXTS if e != ".ini")}
if not ANSIBLE_CONSTANTS.config.get_config_value_and_origin("DEFAULT_JINJA2_NATIVE")[0]:
    REFERENCE_ENV["ANSIBLE_JINJA2_NATIVE"] = "True"
# The variables each fixture holds that dlws does not use: named in the notice.
IGNORED = {"ini": {"ntp_server"}, "yaml-ranges": {"ntp_server", "ansible_python_interpreter"},
           "dir-group_vars-host_vars": {"backup_schedule"},
           "vault": set(), "script": {"rack"}, "toml": set(),
           "plugin": set()}


@pytest.fixture(autouse=True)
def lab_env(tmp_path, monkeypatch):
    """The dir fixture names ~/.ssh/lab_ed25519 (validation insists it exists); the vault one
    needs its password file; nothing from the caller's Ansible settings leaks in."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    # Validation reads the file for a private key's PEM armour (issue 11's domains).
    (tmp_path / ".ssh" / "lab_ed25519").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n")
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(VAULT_PASSWORD))
    for name in (ansible.INVENTORY_ENV, ansible.LIMIT_ENV, ansible.VAULT_ENV):
        monkeypatch.delenv(name, raising=False)


def _decrypt(value):
    """ansible-inventory --list prints a vaulted value as {"__ansible_vault": ciphertext}."""
    if isinstance(value, dict) and set(value) == {"__ansible_vault"}:
        from ansible.parsing.vault import VaultLib, VaultSecret

        secret = VaultSecret(VAULT_PASSWORD.read_bytes().strip())
        return VaultLib([("default", secret)]).decrypt(value["__ansible_vault"]).decode()
    return value


def ansible_list(source: Path, limit: str | None = None) -> tuple[dict, dict]:
    """Ansible's own view: (host -> merged variables, host -> groups) from ansible-inventory."""
    command = [str(BIN / "ansible-inventory"), "-i", str(source), "--list"]
    out = subprocess.run(command + (["--limit", limit] if limit else []), capture_output=True,
                         text=True, check=True, env={**os.environ, **REFERENCE_ENV})
    document = json.loads(out.stdout)
    parents: dict[str, set] = {}
    for group, node in document.items():
        for child in node.get("children", []) if group not in ("_meta", "all") else []:
            parents.setdefault(child, set()).add(group)

    def with_ancestors(group: str) -> set:
        return {group}.union(*(with_ancestors(p) for p in parents.get(group, ())))

    groups: dict[str, set] = {}
    for group, node in document.items():
        for host in node.get("hosts", []) if group != "_meta" else []:
            groups.setdefault(host, set()).update(with_ancestors(group))
    hostvars = document["_meta"]["hostvars"]
    return ({host: {k: _decrypt(v) for k, v in hostvars.get(host, {}).items()}
             for host in groups}, groups)


@pytest.mark.parametrize("case", list(SOURCES))
def test_hosts_and_data_equal_ansible_inventory_list(case):
    """Every host, group and variable Ansible merges: the values read equal Ansible's, the
    variables dlws does not read are exactly the rest (named in the notice, never dropped
    silently), and the exact pyinfra hosts and data the deploy and verify get."""
    variables, groups = ansible_list(SOURCES[case])
    read = ansible.read(SOURCES[case])
    hosts = {host.name: host for host in read}
    assert set(hosts) == set(variables)
    for name, host in hosts.items():
        assert set(host.groups) == groups[name]
        assert host.vars == {k: v for k, v in variables[name].items() if k in host.vars}
        assert set(host.vars) | set(host.ignored) == set(variables[name])
        assert set(host.vars).isdisjoint(host.ignored)
    mapped = ansible.pyinfra_hosts(read, all_keys(), SOURCES[case])
    assert {host.name: host.data for host in mapped} == EXPECTED[case]
    notice = ansible.notice(read, mapped, SOURCES[case])
    for name in IGNORED[case]:
        assert name in notice
    if not IGNORED[case]:
        assert notice is None


def test_an_ignore_list_the_lab_sets_is_kept(monkeypatch):
    """Only Ansible's default list loses .ini: a lab that ignores .ini files gets no hosts."""
    monkeypatch.setenv("ANSIBLE_INVENTORY_IGNORE", ".ini")
    with pytest.raises(AnsibleInventoryError, match="dir"):
        ansible.read(SOURCES["dir-group_vars-host_vars"])


def test_a_plugin_that_cannot_read_its_file_says_why(tmp_path):
    """No plugin reads the file (ansible-inventory gets no host either): the one error carries
    the generator's own reason and the ansible-core version (2.19 hands the reasons over to
    Display.error_as_warning, 2.17 only as warnings' text)."""
    source = tmp_path / "lab.generator.yml"
    source.write_text("plugin: ansible.builtin.generator\nhosts:\n  name: \"{{ nosuch }}\"\n"
                      "layers:\n  seat: [\"1\"]\n")
    assert ansible_list(source) == ({}, {})
    with pytest.raises(AnsibleInventoryError, match=r"(?s)no inventory plugin of ansible-core "
                                                    r"2\.\d+\.\d+ can read it.*'nosuch' is "
                                                    r"undefined"):
        ansible.read(source)


@pytest.mark.parametrize("case", ["yaml-ranges", "dir-group_vars-host_vars"])
def test_verify_gets_the_same_hosts_and_data(case):
    """verify: inventory/ansible.py through pyinfra's loader, plus every key's default."""
    notices = []
    targets = {t.name: t for t in load_targets(str(SOURCES[case]), all_keys(), notices=notices)}
    assert set(targets) == set(EXPECTED[case])
    for name, data in EXPECTED[case].items():
        # pyinfra's docker connector adds the container's name to the host's data
        connector = {"docker_identifier": name[8:]} if name.startswith("@docker/") else {}
        assert targets[name].data == {**all_defaults(), **data, **connector}, name
    assert all(name in notices[0] for name in IGNORED[case])
    if case == "yaml-ranges":
        assert targets["dgx-b.lab.example"].spec == "ssh://admin@dgx-b.lab.example:2200?sudo=true"
        assert targets["@docker/dlws-ci"].spec == "docker://dlws-ci"
        assert targets["@local"].spec == "local://"
        assert set(targets["dgx-a.lab.example"].groups) >= {"gpu", "big_gpu"}
    else:
        key = os.path.expanduser("~/.ssh/lab_ed25519").replace("/", "%2F")
        assert targets["ws02.lab.example"].spec == f"ssh://admin@10.0.0.12?ssh_identity_file={key}"


def test_pyinfra_cli_gets_the_same_hosts_and_data_as_verify():
    """The deploy's own view (pyinfra's debug-inventory of inventory/ansible.py) for the INI
    fixture within a limit equals what verify loads with --limit."""
    env = {**os.environ, ansible.INVENTORY_ENV: str(SOURCES["ini"]),
           ansible.LIMIT_ENV: "gpu:!ws03*"}
    out = subprocess.run([str(BIN / "pyinfra"), "inventory/ansible.py", "debug-inventory"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    pyinfra = {m[1]: json.loads(m[2]) for m in re.finditer(
        r"^\[(\S+)\] *\n--> Groups: [^\n]*\n--> Data:\n(\{.*?\n\})$", out.stderr, re.M | re.S)}
    targets = {t.name: t for t in load_targets(str(SOURCES["ini"]), all_keys(),
                                               limit="gpu:!ws03*")}
    assert set(pyinfra) == set(targets) == {"ws01.lab.example", "ws02.lab.example"}
    for name, target in targets.items():
        assert pyinfra[name] == {**target.data, "_sudo": True}
    assert "not used from the Ansible inventory" in out.stderr and "ntp_server" in out.stderr


@pytest.mark.parametrize(("limit", "hosts"), [
    ("gpu:!ws03*", {"ws01.lab.example", "ws02.lab.example"}),
    ("login:~ws0[3]", {"login.lab.example", "ws03.lab.example"}),
])
def test_limit_is_ansibles_host_patterns(limit, hosts):
    expected, _ = ansible_list(SOURCES["ini"], limit)
    read = {host.name for host in ansible.read(SOURCES["ini"], limit=limit)}
    assert read == set(expected)
    assert read == hosts


def test_bad_data_outside_the_limit_does_not_block(tmp_path):
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "hosts.ini").write_text("[gpu]\nws01 gpu_count=0\n[broken]\nws09 gpu_cuont=1\n"
                                        "ws10\n")
    (tmp_path / "host_vars" / "ws10.yml").write_text("gpu_count: [1\n")  # not YAML
    mapped, _ = ansible.load(tmp_path, all_keys(), limit="gpu")
    assert [(h.name, h.data) for h in mapped] == [("ws01", {"gpu_count": 0})]
    assert [t.name for t in load_targets(str(tmp_path), all_keys(), limit="gpu")] == ["ws01"]
    # Ansible's own words: 2.19 "YAML parsing failed", 2.17 "Syntax Error while loading YAML".
    with pytest.raises(AnsibleInventoryError, match=r"host_vars/ws10.yml:2: (YAML parsing|"
                                                    r".*Syntax Error while loading YAML)"):
        ansible.load(tmp_path, all_keys())
    # Where: 2.19 tags an INI value with its file and line; 2.17 gives INI values (and YAML
    # numbers) no position, so the message names the inventory it was read from.
    where = re.escape(str(tmp_path)) if ANSIBLE_CORE.startswith("2.17.") else r"hosts.ini:4"
    with pytest.raises(AnsibleInventoryError, match=where + r": host ws09: gpu_cuont: "
                                                    r"unknown key; did you mean 'gpu_count'"):
        ansible.load(tmp_path, all_keys(), limit="ws09")


def test_a_limit_matching_nothing_is_refused():
    with pytest.raises(AnsibleInventoryError, match="no hosts within the limit 'gpu:&login'"):
        ansible.read(SOURCES["ini"], limit="gpu:&login")


def test_limit_on_a_pyinfra_inventory_takes_pyinfra_patterns():
    """pyinfra's --limit patterns (a group or a host-name glob); one selecting nothing is
    refused, naming the limit (tests/validate/test_cli_refusals.py: a broken host outside it)."""
    with pytest.raises(ValueError, match="--limit 'gpu' selects no host"):
        load_targets(str(ROOT / "inventory" / "sandbox.py"), all_keys(), limit="gpu")
    everyone = load_targets(str(ROOT / "inventory" / "sandbox.py"), all_keys())
    chosen = load_targets(str(ROOT / "inventory" / "sandbox.py"), all_keys(),
                          limit=everyone[0].name)
    assert [t.name for t in chosen] == [everyone[0].name]


def test_vault_password_from_dlws_variable_or_argument(monkeypatch):
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE")
    with pytest.raises(AnsibleInventoryError, match=r"vault/group_vars/gpu/vault.yml:1: host "
                                                    r"ws01.lab.example: base_https_proxy: "):
        ansible.read(SOURCES["vault"])
    assert ansible.read(SOURCES["vault"], vault_password_file=str(VAULT_PASSWORD))
    monkeypatch.setenv(ansible.VAULT_ENV, str(VAULT_PASSWORD))
    hosts = ansible.read(SOURCES["vault"])
    assert hosts[0].secret == ("base_https_proxy", "ansible_become_password")


def _host(**variables) -> AnsibleHost:
    return AnsibleHost(name="ws01", groups=("gpu",), vars=variables)


@pytest.mark.parametrize(("variables", "name", "data"), [
    ({}, "ws01", {}),
    ({"ansible_host": "10.0.0.1", "ansible_user": "admin", "ansible_port": "2222",
      "ansible_private_key_file": "~/k"},
     "ws01", {"ssh_hostname": "10.0.0.1", "ssh_user": "admin", "ssh_port": 2222, "ssh_key": "~/k"}),
    # the later alias wins, as in ansible/plugins/connection/ssh.py's option vars
    ({"ansible_host": "a", "ansible_ssh_host": "b", "ansible_user": "u1", "ansible_ssh_user": "u2",
      "ansible_private_key_file": "k1", "ansible_ssh_private_key_file": "k2"},
     "ws01", {"ssh_hostname": "b", "ssh_user": "u2", "ssh_key": "k2"}),
    ({"ansible_connection": "community.docker.docker", "ansible_host": "box"}, "@docker/box", {}),
    ({"ansible_connection": "docker"}, "@docker/ws01", {}),
    ({"ansible_connection": "local", "ansible_become": True}, "@local", {"_sudo": True}),
    ({"ansible_become": "yes", "ansible_become_user": "ops"}, "ws01",
     {"_sudo": True, "_sudo_user": "ops"}),
    ({"ansible_become": False, "ansible_become_user": "ops"}, "ws01", {}),
    ({"ansible_become": True, "ansible_become_method": "su"}, "ws01", {"_su_user": "root"}),
    ({"ansible_become": True, "ansible_become_method": "doas", "ansible_become_user": "x"},
     "ws01", {"_doas": True, "_doas_user": "x"}),
    ({"gpu_count": 1, "ansible_connection": "ssh"}, "ws01", {"gpu_count": 1}),
    # passwords: the later alias wins; a number (INI) as its digits; no become, no sudo password
    ({"ansible_ssh_pass": "p1", "ansible_password": "p0", "ansible_become": True,
      "ansible_become_pass": "b1", "ansible_become_password": "b0"}, "ws01",
     {"ssh_password": "p1", "_sudo": True, "_sudo_password": "b1"}),
    ({"ansible_password": 1234, "ansible_become": True, "ansible_sudo_pass": 99}, "ws01",
     {"ssh_password": "1234", "_sudo": True, "_sudo_password": "99"}),
    ({"ansible_become_password": "b0"}, "ws01", {}),
], ids=["none", "ssh", "aliases", "docker", "docker-name", "local", "become", "no-become",
        "su", "doas", "dlws-key", "passwords", "password-numbers", "password-without-become"])
def test_connection_variables_map_onto_pyinfra(variables, name, data):
    mapped, problems = to_pyinfra(_host(**variables))
    assert (mapped.name, mapped.data, problems) == (name, data, [])


@pytest.mark.parametrize(("variables", "var", "reason"), [
    ({"ansible_connection": "winrm"}, "ansible_connection", "use ssh, docker or local"),
    ({"ansible_port": "ssh"}, "ansible_port", "expected a port number"),
    ({"ansible_port": 70000}, "ansible_port", "expected a port number"),
    ({"ansible_become": "maybe"}, "ansible_become", "expected a boolean"),
    ({"ansible_become": True, "ansible_become_method": "runas"}, "ansible_become_method",
     "no pyinfra equivalent"),
    ({"ansible_become": True, "ansible_become_method": "su", "ansible_become_password": "pw"},
     "ansible_become_password", "use ansible_become_method sudo"),
    ({"ansible_become": True, "ansible_become_method": "doas", "ansible_become_pass": "pw"},
     "ansible_become_pass", "use ansible_become_method sudo"),
    ({"ansible_become": True, "ansible_become_password": "hunter2\nx"},
     "ansible_become_password", "control character"),
    ({"ansible_password": ["hunter2"]}, "ansible_password", "expected text"),
])
def test_connection_variables_pyinfra_cannot_use_are_refused(variables, var, reason):
    _, problems = to_pyinfra(_host(**variables))
    assert [p[0] for p in problems] == [var] and reason in problems[0][1]
    assert "hunter2" not in problems[0][1] and "pw" not in problems[0][1]


def test_ssh_only_variables_on_docker_and_local_hosts_are_named():
    hosts = [AnsibleHost("box", ("c",), {"ansible_connection": "docker", "ansible_user": "a"},
                         ignored=("ntp_server",))]
    mapped = ansible.pyinfra_hosts(hosts, all_keys())
    text = ansible.notice(hosts, mapped, "hosts.yml")
    assert "ntp_server" in text and "ansible_user on docker hosts" in text


def test_vaulted_values_stay_out_of_messages():
    host = AnsibleHost("ws01", ("gpu",), {"base_https_proxy": "hunter2-proxy:3128"},
                       origins={"base_https_proxy": "group_vars/gpu/vault.yml:1"},
                       secret=("base_https_proxy",))
    with pytest.raises(AnsibleInventoryError) as error:
        ansible.pyinfra_hosts([host], all_keys(), "lab")
    assert "group_vars/gpu/vault.yml:1: host ws01: base_https_proxy: " in str(error.value)
    assert "hunter2" not in str(error.value) and "<vaulted value>" in str(error.value)


def test_which_paths_are_ansible_sources(tmp_path):
    script = tmp_path / "ec2.py"
    script.write_text("#!/usr/bin/env python3\n")
    script.chmod(0o755)
    assert ansible.is_ansible_source(script)
    assert ansible.is_ansible_source(FIXTURES / "dir")
    assert ansible.is_ansible_source(SOURCES["ini"])
    assert not ansible.is_ansible_source(ROOT / "inventory" / "sandbox.py")


def test_verify_collects_only_the_limited_hosts_and_shows_the_notice():
    out = subprocess.run([sys.executable, "-m", "pytest", "verify", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "--inventory", str(SOURCES["ini"]),
                          "--limit", "gpu:!ws03*", "-k", "test_cpu_cores"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    collected = [line for line in out.stdout.splitlines() if "::" in line]
    assert len(collected) == 2, out.stdout
    assert all("ws01" in line or "ws02" in line for line in collected)
    assert "ntp_server" in out.stdout


def test_pyinfra_inventory_without_the_variable_says_what_to_set():
    env = {k: v for k, v in os.environ.items() if k != ansible.INVENTORY_ENV}
    out = subprocess.run([str(BIN / "pyinfra"), "inventory/ansible.py", "debug-inventory"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"set {ansible.INVENTORY_ENV}" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_templates_render_as_a_play_would_see_them(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.ini").write_text(
        '[gpu]\nws01 ansible_host="{{ inventory_hostname }}.lab.example"\n')
    (tmp_path / "group_vars" / "gpu.yml").write_text(
        'lab_gpu: NVIDIA L4\ngpu_model: "{{ lab_gpu }}"\ngpu_count: "{{ 1 + 1 }}"\n')
    mapped, notice = ansible.load(tmp_path, all_keys())
    assert [(h.name, h.data) for h in mapped] == [
        ("ws01", {"ssh_hostname": "ws01.lab.example", "gpu_model": "NVIDIA L4", "gpu_count": 2})]
    assert "lab_gpu" in notice
    (tmp_path / "group_vars" / "gpu.yml").write_text('gpu_model: "{{ lab_gpu }}"\n')
    with pytest.raises(AnsibleInventoryError,
                       match=r"group_vars/gpu.yml:1: host ws01: gpu_model: 'lab_gpu' is undefined"):
        ansible.load(tmp_path, all_keys())


def test_dlws_commands_take_an_ansible_inventory(monkeypatch, tmp_path):
    from dlws import cli, paths

    given = cli.Inventory(str(SOURCES["ini"]), tmp_path)
    assert (given.file, given.env[ansible.INVENTORY_ENV]) == (
        str(paths.examples_folder() / "ansible.py"), str(SOURCES["ini"]))
    assert given.limit("gpu:!ws03*") == [] and given.env[ansible.LIMIT_ENV] == "gpu:!ws03*"
    pyinfra_file = cli.Inventory(str(paths.examples_folder() / "sandbox.py"), tmp_path)
    assert pyinfra_file.file.endswith("sandbox.py") and pyinfra_file.limit("ws*") == [
        "--limit", "ws*"]
    seen = {}
    monkeypatch.setattr(cli, "verify_and_report",
                        lambda inventory, run_dir, extra: seen.update(extra=extra) or 0)
    cli.main(["verify", str(SOURCES["ini"]), "--limit", "gpu:!ws03*",
              "--vault-password-file", "pw", "--run-dir", str(tmp_path / "run")])
    assert seen["extra"] == ["--limit=gpu:!ws03*", "--vault-password-file=pw"]


@pytest.mark.parametrize(("name", "variables", "var"), [
    ("@docker/x", {}, "inventory_hostname"),
    ("ws01", {"ansible_host": "h?ssh_identity_file=/etc/shadow"}, "ansible_host"),
    ("ws01", {"ansible_host": "-oProxyCommand=x"}, "ansible_host"),
    ("ws01", {"ansible_connection": "docker", "ansible_host": "box;id"}, "ansible_host"),
], ids=["connector", "url", "option", "container"])
def test_names_that_are_not_hosts_are_refused(name, variables, var):
    _, problems = to_pyinfra(AnsibleHost(name=name, groups=(), vars=variables))
    assert [p[0] for p in problems] == [var]


def test_verify_refuses_a_broken_inventory_with_its_message_alone(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts.ini").write_text("[gpu]\nws01\n")
    (tmp_path / "group_vars" / "gpu.yml").write_text("gpu_count: 0\ngpu_modle: NVIDIA L4\n")
    out = subprocess.run([sys.executable, "-m", "pytest", "verify", "-q", "-p", "no:cacheprovider",
                          "--inventory", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 4, text[-2000:]  # pytest's usage error: nothing ran
    assert f"{tmp_path}/group_vars/gpu.yml:2: host ws01: gpu_modle: unknown key" in text
    assert "Traceback" not in text and "ERROR collecting" not in text, text[-2000:]
