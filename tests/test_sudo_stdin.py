"""The deploy's connectors: sudo reads the password on its stdin, never from a command line."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from pyinfra.api import Config, Inventory, QuoteString, State, StringCommand
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from dlws.docker_connector import use_sessions
from dlws.sudo_stdin import SudoStdinLocalConnector, SudoStdinSSHConnector, sudo_stdin_command
from tests import helpers

SECRET = "word\" $(id)"  # (a part of helpers.PASSWORD that no other text holds)
WHERE = ("cmdline", "environ")


def _state(hosts: list[tuple[str, dict]]) -> State:
    """A State whose hosts have the connectors the deploy gives them (the configs' call)."""
    inventory = Inventory((hosts, {}))
    state = State()
    use_sessions(state)
    state.init(inventory, Config())
    return state


def test_the_sudo_line_is_pyinfras_with_sudo_reading_stdin_and_the_command_reading_nothing():
    state = _state([("ws-01", {"ssh_hostname": "127.0.0.1"})])
    host = state.inventory.get_host("ws-01")
    assert type(host.connector) is SudoStdinSSHConnector
    line = sudo_stdin_command(state, host, StringCommand("id", "-un"), {
        "_sudo": True, "_sudo_user": "bob", "_preserve_sudo_env": True, "_env": {"A": "b c"},
        "_chdir": "/srv/x y", "_sudo_password": helpers.PASSWORD}).get_raw_value()
    assert line == ("sudo -H -S -p '' -k -E -u bob sh -c 'cd '\"'\"'/srv/x y'\"'\"' && export "
                    "'\"'\"'A=b c'\"'\"' && exec </dev/null && id -un'")
    assert "word" not in line
    # A login shell (-i), and pyinfra's "no shell" (the redirection still needs one).
    line = sudo_stdin_command(state, host, StringCommand("true"), {
        "_sudo": True, "_use_sudo_login": True, "_shell_executable": None}).get_raw_value()
    assert line == "sudo -H -S -p '' -k -i sh -c 'exec </dev/null && true'"


@pytest.mark.parametrize("arguments, message", [
    ({"_stdin": "input"}, "its own input or a terminal"),
    ({"_get_pty": True}, "its own input or a terminal"),
    ({"_sudo_password": "a\nb"}, "NUL or a line break"),
    ({"_sudo_password": "a\0b"}, "NUL or a line break"),
])
def test_what_would_show_or_split_the_password_is_refused_before_anything_runs(arguments,
                                                                                message):
    # (127.0.0.1 is never connected to: the refusal comes first)
    state = _state([("ws-01", {"ssh_hostname": "127.0.0.1"})])
    connector = state.inventory.get_host("ws-01").connector
    with pytest.raises(PyinfraError, match=message):
        connector.run_shell_command(StringCommand("true"), **{
            "_sudo": True, "_sudo_password": "pw", **arguments})


@pytest.mark.parametrize("answer", ["/tmp/x y", "/tmp/a;id", "/tmp/../etc", "tmp.x", ""])
def test_an_upload_folder_the_host_names_oddly_is_refused_before_any_upload(monkeypatch,
                                                                            answer):
    """`mktemp -d`'s answer goes unquoted into pyinfra's `cp` and `rm` lines: plain path
    characters only. (Plan level: the host's answer is given, 127.0.0.1 never connected.)"""
    from pyinfra.connectors.ssh import SSHConnector
    from pyinfra.connectors.util import CommandOutput, OutputLine

    monkeypatch.setattr(SSHConnector, "run_shell_command", lambda self, command, **kwargs: (
        True, CommandOutput([OutputLine("stdout", answer)])))
    monkeypatch.setattr(SSHConnector, "_put_file",
                        lambda *args: pytest.fail("uploaded through an odd folder"))
    state = _state([("ws-01", {"ssh_hostname": "127.0.0.1"})])
    connector = state.inventory.get_host("ws-01").connector
    with pytest.raises(PyinfraError, match="not a plain absolute path"):
        connector.put_file(io.StringIO("x"), "/root/x", _sudo=True)


def _connected(password_sshd, **extra) -> State:
    ip, data = password_sshd
    data = {key: value for key, value in data.items() if key != "ssh_config_file"}
    state = _state([("ws-01", {"ssh_hostname": ip, **data, **extra})])
    connect_all(state)
    return state


@pytest.mark.integration
def test_the_connection_sends_small_packets_at_once(password_sshd):
    """TCP_NODELAY on the SSH connection (paramiko sets none: each small packet waited for
    the host's delayed ACK)."""
    import socket

    host = _connected(password_sshd).inventory.get_host("ws-01")
    sock = host.connector.client.get_transport().sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def _as_root(host, command: str) -> str:
    return host.get_fact(Command, command, _sudo=True, _sudo_password=helpers.PASSWORD)


@pytest.mark.integration
def test_the_deploy_becomes_root_with_the_sudo_password_and_no_process_holds_it(password_sshd):
    """A deploy's operations (a command, an upload) as root through sudo with
    `_sudo_password`: the password is in no process's command line or environment, on this
    machine or the host, while they run, and no command reads it."""
    state = _connected(password_sshd, _sudo=True, _sudo_password=helpers.PASSWORD)
    host = state.inventory.get_host("ws-01")
    add_op(state, server.shell, name="Who runs this",
           commands=["id -un >/root/who && cat >>/root/who && sleep 1"])
    add_op(state, files.put, name="Upload a root-only file", src=io.StringIO("kept\n"),
           dest="/root/put", mode="600")
    _, seen = helpers.watch_processes(lambda: run_ops(state), SECRET, WHERE)
    assert seen == []
    assert state.results[host].success_ops == 2, state.results[host]
    assert _as_root(host, "cat /root/who; stat -c '%U %a' /root/put; cat /root/put") == \
        "root\nroot 600\nkept"
    ok, output = host.run_shell_command(StringCommand("id", "-un"), _sudo=True,
                                        _sudo_user="free", _sudo_password=helpers.PASSWORD)
    assert (ok, output.stdout) == (True, "free"), output.stderr


@pytest.mark.integration
@pytest.mark.parametrize("user", ["lab", "free"])
def test_an_upload_as_root_passes_through_a_folder_of_the_login_users_own(password_sshd,
                                                                          monkeypatch, user):
    """The temporary copy root copies into place: in a folder of the login user's (700) that
    every upload of the connection uses, itself 600 and gone once copied, the folder gone at
    disconnection; a new file root copies from it starts 600 (pyinfra's own: /tmp/pyinfra-HASH,
    644, and so the new file)."""
    from pyinfra.connectors.ssh import SSHConnector

    extra = {"_sudo_password": helpers.PASSWORD} if user == "lab" else {}
    state = _connected(password_sshd, ssh_user=user)
    host = state.inventory.get_host("ws-01")
    seen: list[str] = []
    put = SSHConnector._put_file

    def spy(connector, filename_or_io, remote_location):
        put(connector, filename_or_io, remote_location)
        seen.append(remote_location)

    monkeypatch.setattr(SSHConnector, "_put_file", spy)
    stat_after = host.connector.run_shell_command

    def stat(path: str) -> str:
        ok, output = stat_after(StringCommand("stat", "-c", QuoteString("%a %U"), path))
        return output.stdout if ok else "gone" if "No such file" in output.stderr else \
            output.stderr

    modes: list[str] = []
    copy = SSHConnector.run_shell_command

    def before_the_copy(connector, command, *args, **kwargs):
        if seen and f"cp {seen[-1]} " in command.get_raw_value():
            modes.extend([stat(seen[-1].rsplit("/", 1)[0]), stat(seen[-1])])
        return copy(connector, command, *args, **kwargs)

    monkeypatch.setattr(SSHConnector, "run_shell_command", before_the_copy)
    for name in ("one", "two"):
        assert host.connector.put_file(io.StringIO("token\n"), f"/root/{name}-{user}",
                                       _sudo=True, **extra)
    monkeypatch.setattr(SSHConnector, "run_shell_command", copy)
    folder = seen[-1].rsplit("/", 1)[0]
    assert modes == [f"700 {user}", f"600 {user}"] * 2
    assert not folder.startswith("/tmp/pyinfra") and seen[0].rsplit("/", 1)[0] == folder
    # Each copy is removed after it is copied; the folder when pyinfra disconnects.
    assert (stat(seen[0]), stat(folder)) == ("gone", f"700 {user}")
    host.disconnect()
    host = _connected(password_sshd, ssh_user=user).inventory.get_host("ws-01")
    assert _as_root(host, f"stat -c '%a %U' /root/one-{user}; cat /root/one-{user}; "
                          f"test -e {folder} || echo gone") == "600 root\ntoken\ngone"


@pytest.mark.integration
@pytest.mark.parametrize("user", ["lab", "free"])
def test_operations_move_files_as_root_through_the_login_users_folder(password_sshd, monkeypatch,
                                                                      tmp_path, user):
    """files.put, which names pyinfra's /tmp copy itself, and files.get of a root-only file, as
    root: each copy lies in the login user's folder (700); the download's is 600 and the login
    user's while it is read (pyinfra's own: /tmp/pyinfra-HASH made readable by all), and gone
    after."""
    from pyinfra.connectors.ssh import SSHConnector

    extra = {"_sudo": True, **({"_sudo_password": helpers.PASSWORD} if user == "lab" else {})}
    state = _connected(password_sshd, ssh_user=user)
    host = state.inventory.get_host("ws-01")
    as_login = host.connector.run_shell_command

    def stat(path: str) -> str:
        ok, output = as_login(StringCommand("stat", "-c", QuoteString("%a %U"), path))
        return output.stdout if ok else "gone" if "No such file" in output.stderr else \
            output.stderr

    seen: list[tuple[str, ...]] = []
    put, get = SSHConnector._put_file, SSHConnector._get_file

    def spy_put(connector, filename_or_io, remote_location):
        put(connector, filename_or_io, remote_location)
        seen.append(("put", remote_location))

    def spy_get(connector, remote_location, filename_or_io):
        seen.append(("get", remote_location, stat(remote_location),
                     stat(remote_location.rsplit("/", 1)[0])))
        get(connector, remote_location, filename_or_io)

    monkeypatch.setattr(SSHConnector, "_put_file", spy_put)
    monkeypatch.setattr(SSHConnector, "_get_file", spy_get)
    _as_root(host, f"umask 077 && echo s3cret > /root/secret-{user}")
    add_op(state, files.put, src=io.StringIO("token\n"), dest=f"/root/put-{user}", mode="600",
           **extra)
    add_op(state, files.get, src=f"/root/secret-{user}", dest=str(tmp_path / "secret"),
           **extra)
    run_ops(state)
    assert state.results[host].success_ops == 2, state.results[host]
    assert (tmp_path / "secret").read_text() == "s3cret\n"
    (_, uploaded), (_, downloaded, *while_read) = seen
    folder = uploaded.rsplit("/", 1)[0]
    assert downloaded.rsplit("/", 1)[0] == folder and stat(folder) == f"700 {user}"
    assert while_read == [f"600 {user}", f"700 {user}"]
    assert (stat(uploaded), stat(downloaded)) == ("gone", "gone")
    assert _as_root(host, f"stat -c '%a %U' /root/put-{user}; cat /root/put-{user}") == \
        "600 root\ntoken"


@pytest.mark.integration
def test_where_sudo_asks_no_password_the_command_still_cannot_read_it(password_sshd):
    state = _connected(password_sshd, ssh_user="free")
    host = state.inventory.get_host("ws-01")
    assert _as_root(host, "id -un; cat; readlink /proc/self/fd/0") == "root\n/dev/null"


@pytest.mark.integration
def test_where_sudo_asks_no_password_and_none_is_given_pyinfras_own_line_runs(password_sshd,
                                                                             monkeypatch):
    """The common case (NOPASSWD, no `_sudo_password`): pyinfra's `sudo -n`, nothing asked;
    `_sudo_user` runs it as that user."""
    import pyinfra.connectors.util as util

    monkeypatch.setattr(util, "getpass", lambda prompt: pytest.fail("asked for a password"))
    state = _connected(password_sshd, ssh_user="free")
    host = state.inventory.get_host("ws-01")
    ok, output = host.run_shell_command(StringCommand("id -un; cat"), _sudo=True)
    assert (ok, output.stdout) == (True, "root"), output.stderr
    ok, output = host.run_shell_command(StringCommand("id", "-un"), _sudo=True, _sudo_user="lab")
    assert (ok, output.stdout) == (True, "lab"), output.stderr


@pytest.mark.integration
def test_a_wrong_sudo_password_fails_with_sudos_own_message_and_asks_nothing(password_sshd,
                                                                             monkeypatch):
    import pyinfra.connectors.util as util

    monkeypatch.setattr(util, "getpass", lambda prompt: pytest.fail("asked for a password"))
    state = _connected(password_sshd)
    host = state.inventory.get_host("ws-01")
    ok, output = host.run_shell_command(StringCommand("id", "-un"), _sudo=True,
                                        _sudo_password="not it")
    assert not ok and output.stdout == ""
    assert "incorrect password" in output.stderr or "Sorry, try again" in output.stderr
    assert "not it" not in output.stderr


@pytest.mark.integration
def test_a_password_pyinfra_asks_for_goes_on_sudos_stdin_too(password_sshd, monkeypatch):
    """No `_sudo_password`: sudo says it needs one, pyinfra asks once, and that command and
    the next run as root with it on sudo's stdin."""
    import pyinfra.connectors.util as util

    asked: list[str] = []
    monkeypatch.setattr(util, "getpass", lambda prompt: asked.append(prompt) or helpers.PASSWORD)
    state = _connected(password_sshd)
    host = state.inventory.get_host("ws-01")

    def twice() -> list:
        return [host.run_shell_command(StringCommand("id -un; cat; sleep 1"), _sudo=True)
                for _ in range(2)]

    results, seen = helpers.watch_processes(twice, SECRET, WHERE)
    assert seen == []
    assert [(ok, output.stdout) for ok, output in results] == [(True, "root")] * 2
    assert len(asked) == 1


def test_a_local_host_gets_the_password_on_the_processs_stdin_alone(monkeypatch):
    """`@local` (the workstation deploying itself): the line pyinfra's local connector runs
    holds no password, and the process is fed it. (Plan level: this machine's tests run as
    root, where sudo asks for nothing.)"""
    import pyinfra.connectors.local as local
    from pyinfra.connectors.util import CommandOutput

    ran: list[tuple[str, object]] = []

    def run_local_process(command, stdin=None, **kwargs):
        ran.append((command, stdin))
        return 0, CommandOutput([])

    monkeypatch.setattr(local, "run_local_process", run_local_process)
    state = _state([("@local", {})])
    connector = state.inventory.get_host("@local").connector
    assert type(connector) is SudoStdinLocalConnector
    ok, _ = connector.run_shell_command(StringCommand("id", "-un"), _sudo=True,
                                        _sudo_password=helpers.PASSWORD)
    assert ok and ran == [("sudo -H -S -p '' -k sh -c 'exec </dev/null && id -un'",
                           helpers.PASSWORD)]


@pytest.mark.integration
def test_a_docker_host_with_sudo_runs_it_in_its_own_exec_with_the_password_on_stdin(
        docker_engine):
    from dlws.sandbox.images import ensure_sshd_image

    with helpers.container(ensure_sshd_image("bookworm"), "dlws-sudo") as name:
        state = _state([(f"@docker/{name}", {})])
        connect_all(state)
        host = state.inventory.get_host(f"@docker/{name}")

        def run():
            return host.run_shell_command(StringCommand("id -un; cat; readlink /proc/self/fd/0; "
                                                        "sleep 1"),
                                          _sudo=True, _sudo_password=helpers.PASSWORD)

        (ok, output), seen = helpers.watch_processes(run, SECRET, WHERE)
        assert seen == []
        assert (ok, output.stdout) == (True, "root\n/dev/null"), output.stderr
        host.disconnect()


@pytest.mark.integration
def test_an_ansible_lab_with_vaulted_passwords_deploys_through_them(password_sshd, tmp_path):
    """The lab's Ansible inventory, its login and sudo passwords vaulted: `pyinfra
    inventory/ansible.py` logs in, becomes root and uploads with them, and no process here or
    on the host holds the sudo password meanwhile."""
    ip, _ = password_sshd
    vault_password = tmp_path / "vault-password"
    vault_password.write_text("lab-vault\n")

    def vaulted(name: str) -> str:
        return subprocess.run(
            [str(helpers.BIN / "ansible-vault"), "encrypt_string", "--vault-password-file",
             str(vault_password), "--name", name, helpers.PASSWORD],
            check=True, capture_output=True, text=True).stdout

    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "hosts.yml").write_text(
        f"gpu:\n  hosts:\n    ws01:\n      ansible_host: {ip}\n      ansible_user: lab\n"
        "      ansible_become: true\n")
    (tmp_path / "lab" / "group_vars").mkdir()
    (tmp_path / "lab" / "group_vars" / "gpu.yml").write_text(
        vaulted("ansible_password") + vaulted("ansible_become_password"))
    (tmp_path / ".ssh").mkdir()
    env = {"DLWS_ANSIBLE_INVENTORY": str(tmp_path / "lab"), "HOME": str(tmp_path),
           "DLWS_ANSIBLE_VAULT_PASSWORD_FILE": str(vault_password)}
    (code, document, stderr), seen = helpers.watch_processes(
        lambda: helpers.pyinfra_json("inventory/ansible.py", "tests/fixtures/whoami_deploy.py",
                                     env), SECRET, WHERE)
    assert code == 0, stderr[-3000:]
    assert seen == []
    assert "word" not in stderr
    state = _connected(password_sshd)
    assert _as_root(state.inventory.get_host("ws-01"),
                    "cat /root/deployed-by; stat -c '%U %a' /root/uploaded") == "root\nroot 600"


@pytest.mark.integration
def test_a_workstation_deploys_and_verifies_over_ssh_through_a_sudo_password(password_sshd,
                                                                            tmp_path):
    """The whole deploy of the README's sandbox data, to an SSH host whose sudo asks for the
    password: it converges, a second run changes nothing, and verify passes, while no
    process's command line or environment (the deploy) or command line (verify: its ssh reads
    the login password from its own environment) holds the sudo password."""
    from dlws.sandbox.data import controller_data

    ip, data = password_sshd
    # (the sandbox's host and group data: the controller's wheelhouse and CA bundle)
    host_data = {"gpu_count": 0, "base_lab_users": ["researcher"], "hardware_min_memory_gib": 1,
                 **controller_data(), **data, "_sudo": True, "_sudo_password": helpers.PASSWORD}
    inventory = tmp_path / "lab.py"
    inventory.write_text(f"hosts = [({ip!r}, {host_data!r})]\n")
    for run in ("first", "second"):
        (code, document, stderr), seen = helpers.watch_processes(
            lambda: helpers.pyinfra_json(str(inventory)), SECRET, WHERE, every=0.05)
        assert code == 0, stderr[-3000:]
        assert seen == [], run
        if run == "second":
            assert helpers.changed_operations(document) == []
    out, seen = helpers.watch_processes(lambda: helpers.run_verify(str(inventory), "-rA"),
                                        SECRET, every=0.05)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert seen == []
    # (as root: the environment's files against their RECORDs, and both trainings)
    for check in ("test_environment_files_match_their_records", "test_mnist_trains",
                  "test_debian_package_files_match_dpkg"):
        assert re.search(rf"^PASSED verify/\S+::{check}\[", out.stdout, re.M), check
