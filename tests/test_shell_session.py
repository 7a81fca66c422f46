"""verify's long-lived shell per container (dlws.shell_session): each command's exit status and
bytes are what a shell of its own gives, whatever the command holds, and nothing one command does
reaches the session or the next command. The first part drives a local `sh` session; the second
a real container, against testinfra's own docker backend."""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from testinfra.backend.docker import DockerBackend

from dlws.command import cmd, sh
from dlws.shell_session import (
    SessionDockerBackend,
    SessionError,
    ShellSession,
    close_all,
    get_host,
)
from tests import helpers

COMMANDS = [
    "echo hi; echo err >&2; exit 3",
    "printf 'no newline'",
    "printf 'a\\000b\\n'; printf 'c\\000' >&2",
    "head -c 1048576 /dev/zero | tr '\\0' x; head -c 300000 /dev/zero | tr '\\0' y >&2",
    "exit 255",
    "kill -9 $$",
    "echo 'unterminated",  # a syntax error of the command's own shell, not of the session's
    "printf '%s 0\\n' 0123456789abcdef0123456789abcdef; echo \"$(printf '%s' \"'\")\"",
    "echo one\necho two\n\necho 'x\ny'",
    "cat; echo after",  # stdin is /dev/null: nothing of the session's input is read
    "",
]


def alone(command: str) -> tuple[int, bytes, bytes]:
    """What the command gives in a shell of its own, as `docker exec ... /bin/sh -c` reports it."""
    out = subprocess.run(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL,
                         capture_output=True)
    rc = out.returncode if out.returncode >= 0 else 128 - out.returncode
    return rc, out.stdout, out.stderr


@pytest.fixture
def session():
    found = ShellSession(["/bin/sh"])
    yield found
    if not found.broken:
        found.close()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_gives_what_a_shell_of_its_own_gives(session, command):
    assert session.run(command) == alone(command)
    # ... and the session serves the next one.
    assert session.run("echo next") == (0, b"next\n", b"")


def test_a_command_cannot_change_the_session_or_the_next_command(session):
    before = session.run("pwd; echo \"${DLWS_X-unset}\"; umask")
    assert session.run("cd /; export DLWS_X=1; umask 077; D=/nowhere; exit 7")[0] == 7
    assert session.run("pwd; echo \"${DLWS_X-unset}\"; umask") == before
    # A process the command leaves behind writes into its own output, not the next command's.
    session.run("(sleep 0.3; echo late; echo late >&2) &")
    assert session.run("sleep 0.6; echo mine") == (0, b"mine\n", b"")
    assert session.run("echo again") == (0, b"again\n", b"")


def test_a_session_that_ends_says_so_and_serves_nothing_more(session):
    with pytest.raises(SessionError) as ended:
        session.run("kill -9 $PPID; sleep 5")
    assert session.broken and ended.value.ran
    with pytest.raises(SessionError) as refused:
        session.run("echo hi")
    assert not refused.value.ran


def test_a_fed_command_reads_the_sessions_input_line_and_the_others_read_nothing():
    line = "pa's \"word\" $(id) %s \\ `x`; $I"
    session = ShellSession(["/bin/sh"], input_line=line)
    try:
        assert session.run("cat", feed=True) == (0, (line + "\n").encode(), b"")
        assert session.run("cat; readlink /proc/self/fd/0") == (0, b"/dev/null\n", b"")
        # Not in the environment of what the session runs.
        assert line.encode() not in session.run("env", feed=True)[1]
    finally:
        session.close()
    for bad in ("a\nb", "a\x00b", "a\rb"):
        with pytest.raises(ValueError, match="line break"):
            ShellSession(["/bin/sh"], input_line=bad)


@pytest.mark.parametrize("argv", [["/bin/false"], ["env", "TMPDIR=/nonexistent/dlws", "/bin/sh"]])
def test_a_session_that_does_not_start_says_so_before_any_command(argv):
    with pytest.raises(SessionError, match="did not start") as refused:
        ShellSession(argv)
    assert not refused.value.ran


# --- a real container, against testinfra's own docker backend --------------------------------


@pytest.fixture(scope="module")
def container(docker_engine):
    from dlws.sandbox.images import ensure_debian_image

    with helpers.container(ensure_debian_image("bookworm"), "dlws-session",
                           "--network", "none") as name:
        yield name


def result(out) -> tuple[int, bytes, bytes]:
    return out.rc, out.stdout_bytes, out.stderr_bytes


@pytest.mark.integration
def test_the_session_backend_answers_as_testinfras_docker_backend(container):
    ours, theirs = SessionDockerBackend(container), DockerBackend(container)
    for command in COMMANDS + [str(cmd("ls", "-la", "--", "/etc")), "id; env | sort"]:
        assert result(ours.run(command)) == result(theirs.run(command)), command
    # The commands ran in one shell: one parent for all (docker exec's has none in the
    # container: 0).
    parents = {ours.run("echo $PPID").stdout for _ in range(3)}
    assert len(parents) == 1 and parents != {"0\n"}
    assert theirs.run("echo $PPID").stdout == "0\n"
    folders = "ls -d /tmp/dlws-session.* 2>/dev/null | wc -l"
    assert theirs.run(folders).stdout == "1\n"
    ours.close()
    assert theirs.run(folders).stdout == "0\n"  # the session's folder went with it
    # A command the session ended under is not run again; its status is unknown, and said so.
    ended = ours.run("kill -9 $PPID")
    assert ended.rc == 255 and "exit status is unknown" in ended.stderr
    # The next command has a new session.
    assert result(ours.run("echo back")) == (0, b"back\n", b"")
    assert ours.run("echo $PPID").stdout not in parents | {"0\n"}
    ours.close()


@pytest.mark.integration
def test_commands_of_two_threads_run_side_by_side_and_plain_takes_docker_exec(container):
    backend = SessionDockerBackend(container)
    flag = f"/tmp/side-{uuid.uuid4().hex[:8]}"
    # Each waits (5 s at most) for the other's mark: one after the other, the first fails.
    found = {}

    def run(me: str, other: str) -> None:
        found[me] = backend.run(sh("touch {}; i=0; while [ ! -e {} ] && [ $i -lt 50 ]; do "
                                   "sleep 0.1; i=$((i+1)); done; test -e {}",
                                   f"{flag}.{me}", f"{flag}.{other}", f"{flag}.{other}")).rc

    threads = [threading.Thread(target=run, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == {"a": 0, "b": 0}
    assert len(backend._sessions) == 2
    assert backend.run("echo $PPID").stdout != "0\n"
    assert backend.plain().run("echo $PPID").stdout == "0\n"
    backend.close()


class NoTmp(SessionDockerBackend):
    """Sessions that cannot start: the container's TMPDIR does not exist."""

    def session_argv(self) -> list[str]:
        return ["docker", "exec", "-i", "-e", "TMPDIR=/nonexistent/dlws", "--", self.name,
                "/bin/sh"]


@pytest.mark.integration
def test_where_no_session_starts_each_command_runs_once_through_docker_exec(container):
    backend = NoTmp(container)
    mark = f"/tmp/once-{uuid.uuid4().hex[:8]}"
    first = backend.run(sh("echo ran >> {}; echo $PPID", mark))
    assert (first.rc, first.stdout) == (0, "0\n")  # docker exec's own process
    assert backend.run(cmd("cat", "--", mark)).stdout == "ran\n"
    assert backend._sessions == [] and not backend._use_sessions  # (not tried again)


@pytest.mark.integration
def test_verify_gets_one_session_host_per_spec_and_closes_it(container):
    def folders() -> int:  # (a session killed by an earlier test leaves its own)
        return int(DockerBackend(container).run("ls -d /tmp/dlws-session.* | wc -l").stdout)

    before = folders()
    host = get_host(f"docker://{container}")
    assert get_host(f"docker://{container}") is host
    assert host.run("echo $PPID").stdout != "0\n"  # (through a session)
    assert folders() == before + 1
    close_all()
    assert folders() == before


# --- a real sshd, against testinfra's own ssh backend ------------------------------------------


def _backends(spec: str):
    from testinfra.backend import parse_hostspec
    from testinfra.backend.ssh import SshBackend

    from dlws.shell_session import SessionSshBackend

    name, options = parse_hostspec(spec)
    options.pop("connection")
    return SessionSshBackend(name, **options), SshBackend(name, **options)


def _ssh_config(folder, key, known_hosts) -> str:
    config = folder / "config"
    config.write_text(f"Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                      f"  UserKnownHostsFile {known_hosts}\n  StrictHostKeyChecking yes\n"
                      "  BatchMode yes\n  LogLevel ERROR\n")
    return str(config)


@pytest.fixture(scope="module")
def sshd(docker_engine, tmp_path_factory):
    """An sshd container (Debian 12, openssh-server) that takes a key made here; its spec as
    verify builds one, with an ssh config that trusts this container's host key alone."""
    folder = tmp_path_factory.mktemp("ssh")
    key = folder / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with helpers.sshd_container(folder, "mkdir -p /root/.ssh && chmod 700 /root/.ssh && cat > "
                                "/root/.ssh/authorized_keys",
                                key.with_suffix(".pub").read_text()) as (ip, known):
        yield f"ssh://root@{ip}?ssh_config={_ssh_config(folder, key, known)}"


@pytest.mark.integration
def test_the_ssh_session_backend_answers_as_testinfras_ssh_backend(sshd):
    ours, theirs = _backends(sshd)
    # Left out: what testinfra raises for (ssh reports 255: the command's own, or its shell
    # killed); a syntax error, which testinfra's ssh leaves to the remote login shell (root's
    # bash here) where the session runs /bin/sh, as the docker backend does; and the empty
    # command, which makes testinfra's ssh a login (the message of the day on its stdout).
    for command in [c for c in COMMANDS if c not in ("exit 255", "kill -9 $$", "echo 'unterm"
                                                     "inated", "")] + [
            str(cmd("ls", "-la", "--", "/etc")), "id; echo $HOME $USER $PATH; umask"]:
        assert result(ours.run(command)) == result(theirs.run(command)), command
    assert ours.run("echo 'unterminated").rc == theirs.run("echo 'unterminated").rc == 2
    # One connection: the commands share one parent. testinfra's ssh logs in for each.
    assert len({ours.run("echo $PPID").stdout for _ in range(3)}) == 1
    assert len({theirs.run("echo $PPID").stdout for _ in range(3)}) == 3
    # A command's own exit status 255 is its own here; testinfra's ssh cannot tell it from
    # ssh's own failure, and raises.
    assert ours.run("exit 255").rc == 255
    with pytest.raises(RuntimeError):
        theirs.run("exit 255")
    folders = "ls -d /tmp/dlws-session.* 2>/dev/null | wc -l"
    assert theirs.run(folders).stdout == "1\n"
    ours.close()
    assert theirs.run(folders).stdout == "0\n"
    host = get_host(sshd)
    assert get_host(sshd) is host and type(host.backend).__name__ == "SessionSshBackend"
    assert host.run("echo $PPID").stdout == host.run("echo $PPID").stdout
    close_all()


@pytest.mark.integration
@pytest.mark.parametrize("sessions", ["1", "0"])
def test_verify_trusts_the_host_keys_the_inventory_names(sshd, tmp_path, monkeypatch, sessions):
    """ssh_known_hosts_file and ssh_strict_host_key_checking reach verify's ssh as they reach
    the deploy's (a path with a space, a % and a quote in it, as ssh would otherwise split or
    expand it), through the sessions and through testinfra's own backend."""
    from urllib.parse import parse_qs, urlsplit

    from dlws.inventory.targets import host_options, host_spec

    monkeypatch.setenv("DLWS_SESSIONS", sessions)
    parsed = urlsplit(sshd)
    folder = Path(parse_qs(parsed.query)["ssh_config"][0]).parent
    trusted = tmp_path / 'lab\'s "known" %d hosts'
    trusted.write_text((folder / "known_hosts").read_text())
    (tmp_path / "empty").write_text("")
    outcomes = []
    for known in (trusted, tmp_path / "empty"):
        data = {"ssh_hostname": parsed.hostname, "ssh_user": "root",
                "ssh_key": str(folder / "id_ed25519"), "ssh_known_hosts_file": str(known),
                "ssh_strict_host_key_checking": "yes"}
        spec = host_spec("ws-ssh", data)
        try:
            outcomes.append(get_host(spec, **host_options(spec, data)).run("echo in").stdout)
        except RuntimeError as error:
            outcomes.append(str(error))
    close_all()
    assert outcomes[0] == "in\n", outcomes
    assert "Host key verification failed" in outcomes[1], outcomes


def test_dlws_sessions_0_gives_testinfras_own_hosts(monkeypatch):
    monkeypatch.setenv("DLWS_SESSIONS", "0")
    for spec in ("docker://dlws-none", "ssh://root@127.0.0.1:9"):
        assert type(get_host(spec).backend).__name__ in ("DockerBackend", "SshBackend"), spec
    monkeypatch.setenv("DLWS_SESSIONS", "1")
    assert type(get_host("ssh://root@127.0.0.1:9").backend).__name__ == "SessionSshBackend"


def test_an_ssh_host_that_does_not_answer_fails_as_testinfras_ssh_does(tmp_path):
    # 127.0.0.1 on a closed port: no session starts, the command goes through testinfra's own
    # ssh once, and its error is testinfra's.
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = _ssh_config(tmp_path, key, tmp_path / "known_hosts")
    ours, _ = _backends(f"ssh://root@127.0.0.1:9?ssh_config={config}")
    with pytest.raises(RuntimeError, match="Connection refused"):
        ours.run("true")
    assert ours._sessions == [] and not ours._use_sessions


# --- an SSH host with a password (pyinfra's ssh_password) -------------------------------------

def _password_host(password_sshd, monkeypatch, sessions: str | None = None, **extra):
    """verify's host of the password sshd (its data, and `extra`), as verify builds it, in a
    fresh cache of hosts; `sessions`: DLWS_SESSIONS, where given."""
    from dlws import shell_session
    from dlws.inventory.targets import host_options, host_spec

    if sessions is not None:
        monkeypatch.setenv("DLWS_SESSIONS", sessions)
    monkeypatch.setattr(shell_session, "_HOSTS", {})
    ip, data = password_sshd
    data = {**data, **extra}
    spec = host_spec(ip, data)
    return get_host(spec, **host_options(spec, data))


@pytest.mark.integration
@pytest.mark.parametrize("sessions", ["1", "0"])
def test_an_ssh_host_with_a_password_is_verified_as_the_deploy_reaches_it(
        password_sshd, monkeypatch, sessions):
    from dlws.live import run_live

    host = _password_host(password_sshd, monkeypatch, sessions)
    out = host.run("id -un; echo $PPID")
    assert (out.rc, out.stdout.split()[0]) == (0, "lab"), out.stderr
    # One login for every command with sessions; one each without.
    parents = {host.run("echo $PPID").stdout for _ in range(2)}
    assert len(parents) == (1 if sessions == "1" else 2)
    # The password is in no process's command line (ssh reads it through SSH_ASKPASS, from
    # its own environment), while a session is open.
    assert helpers.processes_holding("word\" $(id)") == []
    # A command read as it prints (the training check's lines) logs in the same way.
    lines: list[str] = []
    assert run_live(host, cmd("sh", "-c", "echo one >&2; id -un"), lines.append).stdout == \
        "lab\n"
    assert lines == ["one"]
    close_all()


@pytest.mark.integration
def test_a_wrong_password_is_refused_with_sshs_own_message(password_sshd, monkeypatch):
    host = _password_host(password_sshd, monkeypatch, ssh_password="not it")
    with pytest.raises(RuntimeError, match="Permission denied"):
        host.run("id -un")
    close_all()


@pytest.mark.integration
@pytest.mark.parametrize("sessions", ["1", "0"])
def test_verify_becomes_root_with_the_sudo_password_and_no_command_reads_it(
        password_sshd, monkeypatch, sessions):
    """_sudo with _sudo_password: each command's sudo reads the password on its stdin; the
    command runs as root with its stdin from /dev/null, and the password is on no command
    line, here or on the host, while it runs."""
    from dlws.live import run_live

    host = _password_host(password_sshd, monkeypatch, sessions, _sudo=True,
                          _sudo_password=helpers.PASSWORD)
    out, seen = helpers.watch_processes(lambda: host.run("id -un; cat; sleep 1"),
                                        "word\" $(id)")
    assert (out.rc, out.stdout) == (0, "root\n"), out.stderr
    assert seen == []
    # ... and the next (its sudo reads the password again: -k, as pyinfra).
    assert host.run("id -u; cat").stdout == "0\n"
    lines: list[str] = []
    assert run_live(host, cmd("sh", "-c", "echo one >&2; cat; id -un"), lines.append).stdout == \
        "root\n"
    assert lines == ["one"]
    close_all()


@pytest.mark.integration
@pytest.mark.parametrize("sessions", ["1", "0"])
def test_where_sudo_asks_no_password_the_command_still_cannot_read_it(
        password_sshd, monkeypatch, sessions):
    host = _password_host(password_sshd, monkeypatch, sessions, ssh_user="free", _sudo=True,
                          _sudo_password=helpers.PASSWORD)
    out = host.run("id -un; cat; ls -l /proc/self/fd/0")
    assert out.rc == 0 and out.stdout.split()[0] == "root", out.stderr
    assert "word" not in out.stdout and out.stdout.rstrip().endswith("-> /dev/null")
    close_all()


@pytest.mark.integration
@pytest.mark.parametrize("sessions", ["1", "0"])
def test_a_wrong_sudo_password_fails_each_command_with_sudos_own_message(
        password_sshd, monkeypatch, sessions):
    host = _password_host(password_sshd, monkeypatch, sessions, _sudo=True,
                          _sudo_password="not it")
    out = host.run("id -un")
    assert out.rc != 0 and out.stdout == ""
    assert "incorrect password" in out.stderr or "Sorry, try again" in out.stderr, out.stderr
    assert "not it" not in out.stderr
    close_all()
