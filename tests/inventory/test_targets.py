"""Inventory translation: one pyinfra inventory drives both deploy and verify."""

from __future__ import annotations

import re
import shlex

import pytest

from dlws.inventory.targets import host_options, host_spec, load_targets
from dlws.roles import all_keys


@pytest.mark.parametrize(
    ("name", "data", "spec"),
    [
        ("@docker/dlws-sandbox", {"docker_identifier": "dlws-sandbox"}, "docker://dlws-sandbox"),
        ("@local", {}, "local://"),
        ("ws-01.lab", {}, "ssh://ws-01.lab"),
        ("ws-01.lab", {"ssh_user": "admin", "ssh_port": 2222, "ssh_key": "/k/id"},
         "ssh://admin@ws-01.lab:2222?ssh_identity_file=%2Fk%2Fid"),
        ("gpu", {"ssh_hostname": "10.0.0.5", "ssh_user": "root"}, "ssh://root@10.0.0.5"),
        ("ws", {"ssh_user": "admin", "_sudo": True}, "ssh://admin@ws?sudo=true"),
        ("ws", {"ssh_config_file": "/lab/ssh config"}, "ssh://ws?ssh_config=%2Flab%2Fssh+config"),
    ],
    ids=["docker", "local", "ssh-bare", "ssh-user-port-key", "ssh-hostname", "ssh-sudo",
         "ssh-config"],
)
def test_host_spec(name, data, spec):
    assert host_spec(name, data) == spec


@pytest.mark.parametrize("path", [
    "/lab/known_hosts", "/lab/a b/%h known", '/x" -oProxyCommand=touch /tmp/p "', "/x\\\" $(id)",
    "-oProxyCommand=id"])
def test_host_key_options_stay_one_word_each_whatever_the_path(path):
    """ssh_known_hosts_file and ssh_strict_host_key_checking reach verify's ssh as two `-o`
    options: each one shell word (testinfra puts them into its command line as they are), each
    value in ssh's quotes with its quotes, backslashes and `%` escaped, never a new option."""
    data = {"ssh_known_hosts_file": path, "ssh_strict_host_key_checking": "accept-new"}
    words = shlex.split(host_options("ssh://ws", data)["ssh_extra_args"])
    assert words[0::2] == ["-o", "-o"] and len(words) == 4, words
    option, _, value = words[1].partition("=")
    assert option == "UserKnownHostsFile" and value.startswith('"') and value.endswith('"')
    # ssh's own reading of the value (argv_split: a backslash escapes the next character, a
    # bare quote ends the value), then its `%%` one `%`.
    read, escaped = "", False
    for at, char in enumerate(value[1:], 1):
        if escaped:
            read, escaped = read + char, False
        elif char == "\\":
            escaped = True
        elif char == '"':
            assert at == len(value) - 1, f"the value ends early, at {at}: {value}"
        else:
            read += char
    # ssh expands a `%` token in these options; `%%` is a `%`
    assert re.fullmatch(r"(?:[^%]|%%)*", read) and read.replace("%%", "%") == path, read
    assert words[3] == 'StrictHostKeyChecking="accept-new"'
    assert host_options("docker://ws", data) == {} and host_options("ssh://ws", {}) == {}


def test_a_password_goes_to_the_ssh_backend_alone_never_into_the_spec_or_ssh_options():
    """ssh_password: an option of dlws.shell_session's ssh backend (which hands it to ssh
    through SSH_ASKPASS), with ssh told to ask once and not to run in batch mode."""
    secret = "pa's \"word\" $(id) %h -oProxyCommand=x"
    data = {"ssh_user": "lab", "ssh_password": secret}
    spec = host_spec("ws-01", data)
    options = host_options(spec, data)
    assert secret not in spec and "word" not in spec
    assert options["ssh_password"] == secret
    assert shlex.split(options["ssh_extra_args"]) == [
        "-o", 'BatchMode="no"', "-o", 'NumberOfPasswordPrompts="1"']
    assert host_options("docker://ws", data) == {}


def test_a_sudo_password_goes_to_the_ssh_backend_alone_and_only_with_sudo():
    """_sudo_password: an option of dlws.shell_session's ssh backend (its sudo reads it on
    stdin), where the host has _sudo as well; never in the spec or the ssh options."""
    secret = "pa's \"word\" $(id) %h -oProxyCommand=x"
    data = {"ssh_user": "lab", "_sudo": True, "_sudo_password": secret}
    spec = host_spec("ws-01", data)
    options = host_options(spec, data)
    assert secret not in spec and "word" not in spec and "sudo=true" in spec
    assert options == {"sudo_password": secret}
    assert host_options(spec, {**data, "_sudo": False}) == {}
    assert host_options("docker://ws", data) == {}


def test_unsupported_connector_is_named():
    with pytest.raises(ValueError, match="@vagrant is not supported"):
        host_spec("@vagrant/box", {})


def test_lab_example_inventory_loads_with_groups_and_data(tmp_path, monkeypatch):
    # The example names ~/.ssh/lab_ed25519; validation insists the key exists on the controller.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "lab_ed25519").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n")
    targets = {t.name: t for t in load_targets("inventory/lab.example.py", all_keys())}
    dgx = targets["dgx-01.lab.example"]
    assert dgx.spec.startswith("ssh://admin@dgx-01.lab.example:2222?ssh_identity_file=")
    assert dgx["gpu_count"] == 4 and "gpu_servers" in dgx.groups
    # Defaults fill what the inventory leaves out, so verify expects what deploy installs.
    assert dgx["python_env_prefix"] == "/opt/dlws/venv"
    assert targets["teach-01.lab.example"]["gpu_count"] == 0


def test_bad_inventory_refused_with_host_and_key(tmp_path):
    inventory = tmp_path / "bad.py"
    inventory.write_text('hosts = [("ws-9", {"gpu_count": 1, "gpu_modell": "x"})]\n')
    with pytest.raises(ValueError, match=r"host ws-9: gpu_modell: unknown key; did you mean"):
        load_targets(str(inventory), all_keys())
