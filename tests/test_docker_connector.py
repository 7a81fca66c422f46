"""The deploy's docker connector (dlws.docker_connector): each command run in the container's one
session shell gives pyinfra the status and lines pyinfra's own docker connector gives, with
pyinfra's arguments (environment, folder, shell, exit codes) applied the same way; what the
session cannot do goes pyinfra's own way; and the pyinfra configs give it to `@docker/` hosts
only. The commands run in a real container, against pyinfra's own connector."""

from __future__ import annotations

import contextlib
import hashlib
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import StringCommand
from pyinfra.connectors.docker import DockerConnector, PodmanConnector
from pyinfra.context import ctx_state

from dlws.command import cmd
from dlws.docker_connector import (
    ONE_ARGUMENT_MAX,
    SESSION_UPLOAD_MAX,
    SessionDockerConnector,
    lines,
    upload_command,
    use_sessions,
)
from dlws.shell_session import ShellSession
from dlws.sudo_stdin import SudoStdinLocalConnector, SudoStdinSSHConnector
from tests import helpers
from tests.test_shell_session import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


def test_lines_are_split_as_pyinfras_local_connector_reads_them():
    assert [line.line for line in lines(b"a\nb\n\nc", "stdout")] == ["a", "b", "", "c"]
    assert [line.line for line in lines(b"a\r\n", "stderr")] == ["a\r"]
    assert lines(b"", "stdout") == []
    assert {line.buffer_name for line in lines(b"x\ny\n", "stderr")} == {"stderr"}


def test_the_configs_give_docker_and_ssh_hosts_dlws_connectors_and_leave_the_rest():
    inventory = Inventory(([("@docker/box", {}), ("@local", {}), ("@podman/pod", {}),
                            ("ws-01", {"ssh_hostname": "127.0.0.1"})], {}))
    state = State()
    # Another State in pyinfra's context (one an earlier run left there): the one given counts.
    with ctx_state.use(State()):
        use_sessions(state)
    state.init(inventory, Config())
    kinds = {host.name: type(host.connector) for host in inventory}
    assert kinds["@docker/box"] is SessionDockerConnector
    assert kinds["@local"] is SudoStdinLocalConnector
    assert kinds["@podman/pod"] is PodmanConnector
    assert kinds["ws-01"] is SudoStdinSSHConnector  # (dlws.sudo_stdin)
    # Both configs call it (the repository's, and the one `dlws` passes to pyinfra).
    for config in (ROOT / "config.py", ROOT / "dlws" / "pyinfra_config.py"):
        assert "\nuse_sessions(state)\n" in config.read_text(), config


def test_nothing_is_swapped_once_the_connectors_are_built():
    state = State(Inventory(([("@docker/box", {})], {})), Config())
    use_sessions(state)
    assert type(state.inventory.get_host("@docker/box").connector) is DockerConnector


def test_the_configs_state_is_the_one_in_pyinfras_context():
    """The configs pass pyinfra's `state`, a proxy of the running command's State."""
    from pyinfra import state as context_state

    inventory = Inventory(([("@docker/box", {})], {}))
    running = State()
    with ctx_state.use(running):
        use_sessions(context_state)
    running.init(inventory, Config())
    assert type(inventory.get_host("@docker/box").connector) is SessionDockerConnector


# --- a real container, against pyinfra's own docker connector ---------------------------------


@contextlib.contextmanager
def connected(*run_args: str):
    """(state, host): a running container of the bare Debian 12 image (`run_args` to `docker
    run`), its `@docker/` host given dlws's connector as the configs give it, connected."""
    from dlws.sandbox.images import ensure_debian_image

    with helpers.container(ensure_debian_image("bookworm"), "dlws-connector",
                           "--network", "none", *run_args) as name:
        inventory = Inventory(([(f"@docker/{name}", {})], {}))
        state = State()
        use_sessions(state)
        state.init(inventory, Config())
        host = inventory.get_host(f"@docker/{name}")
        host.connect()
        try:
            yield state, host
        finally:
            host.connector.disconnect()


@pytest.fixture(scope="module")
def hosts(docker_engine):
    """(ours, theirs): the same running container through each connector, connected."""
    with connected() as (state, ours):
        theirs = DockerConnector(state, ours)
        theirs.connect()
        yield ours.connector, theirs


def answer(connector, command, **arguments):
    status, output = connector.run_shell_command(StringCommand(command), **arguments)
    return status, output.stdout_lines, output.stderr_lines


CASES = [(command, {}) for command in COMMANDS] + [
    (str(cmd("ls", "-la", "--", "/etc")), {}),
    ("id; env | sort; pwd; umask", {}),
    ("exit 3", {"_success_exit_codes": [0, 3]}),
    ("exit 4", {"_success_exit_codes": [0, 3]}),
    ("echo \"$DLWS_A|$DLWS_B\"", {"_env": {"DLWS_A": "it's $(id)", "DLWS_B": "b c"}}),
    ("pwd; ls", {"_chdir": "/etc/apt"}),
    ("echo ${BASH_VERSION:+bash}", {"_shell_executable": "bash"}),
    ("printf 'caf\\303\\251\\n'", {}),
]


@pytest.mark.integration
@pytest.mark.parametrize(("command", "arguments"), CASES)
def test_a_command_answers_as_pyinfras_own_docker_connector(hosts, command, arguments):
    ours, theirs = hosts
    assert answer(ours, command, **arguments) == answer(theirs, command, **arguments)


@pytest.mark.integration
def test_bytes_that_are_not_utf8_are_replaced_not_the_rest_of_the_output_lost(hosts):
    ours, theirs = hosts
    command = "printf 'caf\\303\\251\\n\\377\\nafter\\n'"
    assert answer(ours, command) == (True, ["caf\u00e9", "\ufffd", "after"], [])
    # (pyinfra's own reader stops at the first such line, with a traceback on stderr)
    assert answer(theirs, command) == (True, ["caf\u00e9"], [])


# The process above the command's own shell: the session's shell for each command in it; for
# pyinfra's own connector, none in the container (`docker exec`'s process starts the command).
ABOVE = "read -r _ _ _ above _ < /proc/$PPID/stat; echo \"$above\""


@pytest.mark.integration
def test_the_commands_run_in_one_shell_and_cannot_change_it(hosts):
    ours, theirs = hosts
    shells = {answer(ours, ABOVE)[1][0] for _ in range(3)}
    assert len(shells) == 1
    assert answer(theirs, ABOVE)[1][0] not in shells
    assert answer(ours, "cd /; export DLWS_X=1; umask 077; exit 7")[0] is False
    assert answer(ours, "echo \"${DLWS_X-unset}\"; umask")[1] == ["unset", "0022"]
    assert {answer(ours, ABOVE)[1][0]} == shells


@pytest.mark.integration
def test_what_the_session_cannot_do_goes_pyinfras_own_way(hosts):
    ours, _ = hosts
    session = answer(ours, ABOVE)[1][0]
    # Input to feed: only `docker exec -i` gives the command its stdin.
    status, out, _ = answer(ours, "cat; " + ABOVE, _stdin="fed\n")
    assert status and out[0] == "fed" and out[1] != session
    # A timeout: pyinfra's own reader gives up (the session would wait).
    with pytest.raises(TimeoutError):
        ours.run_shell_command(StringCommand("sleep 5"), _timeout=1)
    # Printed as it comes (-vv).
    assert answer(ours, ABOVE, print_output=True)[1] != [session]
    assert answer(ours, ABOVE)[1] == [session]


@pytest.mark.integration
def test_a_session_that_ends_mid_command_fails_that_command_and_the_next_gets_a_new_one(hosts):
    ours, _ = hosts
    before = answer(ours, ABOVE)[1]
    status, out, err = answer(ours, ABOVE.replace("echo", "kill -9") + "; sleep 5; echo no")
    assert status is False and out == []
    assert "shell session ended while this command ran" in err[0], err
    after = answer(ours, ABOVE)[1]
    assert after != before
    assert answer(ours, ABOVE)[1] == after


# --- uploads: through the session where the command fits, as `docker cp` writes them ---


def docker_cps(monkeypatch) -> list[str]:
    """The destinations pyinfra's own `docker cp` upload is called for, from now on."""
    calls: list[str] = []
    own = DockerConnector.put_file

    def counted(self, filename_or_io, remote_filename, *args, **kwargs):
        calls.append(remote_filename)
        return own(self, filename_or_io, remote_filename, *args, **kwargs)
    monkeypatch.setattr(DockerConnector, "put_file", counted)
    return calls


def in_container(connector, command: str) -> list[str]:
    """`answer`'s stdout lines, of a command that must succeed."""
    status, out, err = answer(connector, command)
    assert status, err
    return out


# (stat: the mode, owner, group, size and type; then the bytes' digest)
LANDED = "stat -c '%a %u %g %s %F' -- \"$0\" && sha256sum < \"$0\""
UPLOADS = [
    ("plain", b"[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"),
    ("every byte", bytes(range(256)) * 3),
    ("empty", b""),
    ("95 KiB", b"\xff" * 95 * 1024),
]
NAMES = ["plain", "with space and 'quote'", "new\nline $(touch pwned) `touch pwned`; touch pwned",
         "-dash", "caf\u00e9"]


@pytest.mark.integration
@pytest.mark.parametrize(("what", "data"), UPLOADS, ids=[case[0] for case in UPLOADS])
@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_an_upload_through_the_session_lands_as_docker_cp_writes_it(hosts, monkeypatch, what,
                                                                     data, name):
    """The same bytes, mode, owner and group as pyinfra's own `docker cp` upload, for a new file
    and over an existing one of another owner and mode; no `docker cp` started; nothing left
    beside it; no name ran as shell."""
    ours, theirs = hosts
    in_container(ours, "rm -rf /srv/up && mkdir -p /srv/up/ours /srv/up/theirs && "
                 "printf old >/srv/up/ours/old && printf old >/srv/up/theirs/old && "
                 "chmod 664 /srv/up/*/old && chown 65534:65534 /srv/up/*/old")
    cps = docker_cps(monkeypatch)
    for dest in (name, "old"):
        assert ours.put_file(io.BytesIO(data), f"/srv/up/ours/{dest}") is True
        assert theirs.put_file(io.BytesIO(data), f"/srv/up/theirs/{dest}") is True
        landed = [in_container(ours, str(cmd("sh", "-c", LANDED, f"/srv/up/{side}/{dest}")))
                  for side in ("ours", "theirs")]
        assert landed[0] == landed[1], (dest, landed)
    assert cps == [f"/srv/up/theirs/{name}", "/srv/up/theirs/old"]
    assert in_container(ours, "find /srv/up/ours -mindepth 1 -printf x | wc -c; "
                        "find / -xdev -name pwned") == ["2"]


@pytest.mark.integration
def test_a_larger_upload_or_a_relative_path_goes_by_docker_cp(hosts, monkeypatch):
    ours, _ = hosts
    cps = docker_cps(monkeypatch)
    assert ours.put_file(io.BytesIO(b"\x01" * (SESSION_UPLOAD_MAX + 1)), "/srv/over") is True
    assert ours.put_file(io.BytesIO(b"relative"), "srv/relative") is True
    assert cps == ["/srv/over", "srv/relative"]
    # (`docker cp` reads a relative path from the container's root)
    assert in_container(ours, "stat -c %s /srv/over; cat /srv/relative") == [
        str(SESSION_UPLOAD_MAX + 1), "relative"]


@pytest.mark.integration
def test_an_upload_whose_command_is_the_longest_argument_linux_takes_goes_through_the_session(
        hosts, monkeypatch):
    """The command at exactly ONE_ARGUMENT_MAX bytes goes through the session (had that been
    over the kernel's limit, the shell could not run it and `docker cp` would have); one byte
    more goes by `docker cp`, not tried in the session first. Both land whole."""
    ours, _ = hosts
    in_container(ours, "rm -rf /srv/arg && mkdir -p /srv/arg")
    for size in range(96_000, SESSION_UPLOAD_MAX + 1):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        short = len(upload_command(data, "/srv/arg/").encode())
        if 0 < ONE_ARGUMENT_MAX - short < 255:
            break
    else:
        raise AssertionError("no size of file leaves room for a name")
    exact = "/srv/arg/" + "a" * (ONE_ARGUMENT_MAX - short)
    over = exact + "b"
    assert [len(upload_command(data, dest).encode()) for dest in (exact, over)] == [
        ONE_ARGUMENT_MAX, ONE_ARGUMENT_MAX + 1]
    cps = docker_cps(monkeypatch)
    tried: list[int] = []
    run = ShellSession.run
    monkeypatch.setattr(ShellSession, "run",
                        lambda self, command, *a, **k: tried.append(len(command)) or
                        run(self, command, *a, **k))
    assert ours.put_file(io.BytesIO(data), exact) is True
    assert (cps, tried) == ([], [ONE_ARGUMENT_MAX])
    assert ours.put_file(io.BytesIO(data), over) is True
    assert (cps, tried) == ([over], [ONE_ARGUMENT_MAX])
    digest = hashlib.sha256(data).hexdigest()
    assert in_container(ours, str(cmd("sha256sum", "--", exact, over))) == [
        f"{digest}  {exact}", f"{digest}  {over}"]


@pytest.mark.integration
def test_an_upload_replaces_a_link_where_docker_cp_writes_through_it(hosts, monkeypatch):
    ours, theirs = hosts
    in_container(ours, "rm -rf /srv/ln && mkdir -p /srv/ln && printf kept >/srv/ln/target && "
                 "ln -s /srv/ln/target /srv/ln/ours && ln -s /srv/ln/target /srv/ln/theirs")
    cps = docker_cps(monkeypatch)
    assert ours.put_file(io.BytesIO(b"new"), "/srv/ln/ours") is True
    assert cps == []
    assert in_container(ours, "cat /srv/ln/target; echo; stat -c %F /srv/ln/ours; "
                        "cat /srv/ln/ours") == ["kept", "regular file", "new"]
    theirs.put_file(io.BytesIO(b"through"), "/srv/ln/theirs")
    assert in_container(ours, "cat /srv/ln/target") == ["through"]


@pytest.mark.integration
def test_an_upload_the_session_cannot_make_goes_by_docker_cp_and_leaves_nothing(hosts,
                                                                                monkeypatch):
    """A destination that cannot be renamed onto (a bind mount: /etc/hosts) or whose folder is
    missing: `docker cp`'s own error, as before, and no folder of the session's left behind."""
    ours, _ = hosts
    cps = docker_cps(monkeypatch)
    for dest in ("/etc/hosts", "/srv/missing/file"):
        with pytest.raises(OSError):
            ours.put_file(io.BytesIO(b"x"), dest)
    assert cps == ["/etc/hosts", "/srv/missing/file"]
    assert in_container(ours, "find / -xdev -name '.dlws-upload.*' | wc -l") == ["0"]
    # The session still serves the next upload.
    ours.put_file(io.BytesIO(b"after"), "/srv/after")
    assert cps == ["/etc/hosts", "/srv/missing/file"]
    assert in_container(ours, "cat /srv/after") == ["after"]


@pytest.mark.integration
def test_where_the_sessions_user_is_not_root_an_upload_goes_by_docker_cp(docker_engine,
                                                                          monkeypatch):
    """`docker cp` writes as root whatever the container's user: so does an upload here."""
    with connected("--user", "65534:65534") as (_, host):
        cps = docker_cps(monkeypatch)
        assert host.connector.put_file(io.BytesIO(b"x"), "/tmp/by-root") is True
        assert cps == ["/tmp/by-root"]
        assert in_container(host.connector, "id -u; stat -c '%u %a' /tmp/by-root") == [
            "65534", "0 600"]


def test_commands_of_parallel_hosts_overlap_under_pyinfras_gevent(tmp_path):
    """pyinfra's CLI patches the interpreter for gevent: two hosts' sessions wait together, not
    one after the other. Each command waits (at most 20 s) for the other's mark before it
    leaves its own answer: run one after the other, the first gives up, having never seen the
    second's mark (two local shells)."""
    script = textwrap.dedent("""
        import pyinfra_cli, sys, gevent
        from dlws.command import sh
        from dlws.shell_session import ShellSession
        folder = sys.argv[1]
        wait = ("touch {}/{}; i=0; while [ ! -e {}/{} ]; do i=$((i+1)); "
                "[ $i -gt 2000 ] && exit 1; sleep 0.01; done; echo met")
        lines = [sh(wait, folder, "a", folder, "b"), sh(wait, folder, "b", folder, "a")]
        sessions = [ShellSession(["/bin/sh"]), ShellSession(["/bin/sh"])]
        found = [gevent.spawn(s.run, str(line)) for s, line in zip(sessions, lines)]
        gevent.joinall(found)
        print([g.value[0] for g in found], [g.value[1].decode().strip() for g in found])
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[0, 0] ['met', 'met']", out.stdout
