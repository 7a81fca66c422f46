"""pyinfra's docker connector, its commands in one long-lived shell per container.

pyinfra's `DockerConnector` starts `docker exec -i CONTAINER sh -c COMMAND` for each command: on
this machine about 80 ms of wall time (the docker client, dockerd, containerd, runc) for a
command that itself takes a millisecond, and a first deploy of the README's sandbox runs some 75
of them (measured with a `docker` wrapper that logged each call: 76 `exec`s, 5.6 s in those
that were not apt's or pip's). `SessionDockerConnector` runs them in one `docker exec -i
CONTAINER /bin/sh` (`dlws.shell_session.ShellSession`, verify's session), each as its own
`/bin/sh -c`, and hands pyinfra the same status and output lines as pyinfra's own connector.

A command pyinfra asks to feed (`_stdin`), to time out (`_timeout`), to give a terminal
(`_get_pty`), to run through sudo (`_sudo`: its password, if any, on stdin), or whose output is
printed as it comes (`-vv`) goes pyinfra's own way, as does every command where no session
starts (and every command with DLWS_SESSIONS=0).

An upload to an absolute path whose command fits in one argument (a file of up to about 96 KiB:
`ONE_ARGUMENT_MAX`) goes through the session too (`docker cp` is the same 60 to 80 ms of client
and daemon as an exec, and a first deploy makes a dozen small ones): its bytes, base64, as one
quoted word of a command that writes them into a new file (0600 and root's, as `docker cp` writes
it; where the session's user is not root the upload is `docker cp`'s) in a mktemp folder beside
the destination, and renames it onto the destination. A link there is replaced, not followed
(`docker cp` writes through it). Where the session is busy or fails, or the command is longer,
`docker cp` does it, as before. Downloads stay `docker cp`.

`use_sessions(state)` (called by both pyinfra configs, before pyinfra builds its connectors)
gives each `@docker/` host this connector, and each SSH and `@local` host dlws.sudo_stdin's
(its sudo reads the password on stdin); pyinfra's other connectors, and subclasses of its own
(podman), are left as they are.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shlex
import threading
from io import BytesIO

from click import echo
from pyinfra.api import State
from pyinfra.api.util import get_file_io
from pyinfra.connectors.docker import DockerConnector
from pyinfra.connectors.local import LocalConnector
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.util import (
    CommandOutput,
    OutputLine,
    extract_control_arguments,
    make_unix_command_for_host,
)
from pyinfra.context import ctx_state

from dlws.command import Command, sh
from dlws.facts.pyinfra_patch import before_init, use_connector
from dlws.shell_session import SessionError, ShellSession
from dlws.sudo_stdin import SudoStdin, SudoStdinLocalConnector, SudoStdinSSHConnector

# Control arguments only pyinfra's own connector honours (the session feeds no input, has no
# terminal, and waits for its command however long it takes).
OWN_WAY = ("_stdin", "_get_pty", "_timeout")

# An upload goes through the session where its command, the file's base64 (4/3 of its bytes) in
# it, is at most ONE_ARGUMENT_MAX bytes: the command is one argument of the `/bin/sh -c` that
# runs it, and Linux takes no argument of more (MAX_ARG_STRLEN, 32 pages, its NUL included).
# A file over SESSION_UPLOAD_MAX bytes is not tried: its base64 alone would be longer.
ONE_ARGUMENT_MAX = 32 * 4096 - 1
SESSION_UPLOAD_MAX = 96 * 1024


def lines(data: bytes, stream: str) -> list[OutputLine]:
    """A stream's bytes as pyinfra's local connector reads them: one line per newline, the
    newline dropped, a last line without one kept."""
    text = data.decode("utf-8", errors="replace")
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [OutputLine(stream, part) for part in parts]


class SessionDockerConnector(SudoStdin, DockerConnector):
    """`DockerConnector` with each plain command in the container's one session shell, and
    each `_sudo` one in a `docker exec -i` of its own, its sudo reading the password on stdin
    (dlws.sudo_stdin)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._session: ShellSession | None = None
        self._opening = threading.Lock()
        # (False once a session failed to start, or when DLWS_SESSIONS=0: no more tries)
        self._use_session = os.environ.get("DLWS_SESSIONS", "1") != "0"

    def _take(self) -> ShellSession | None:
        """The session, its lock held for the caller; None where it is busy or cannot start."""
        if not self._use_session:
            return None
        with self._opening:
            if self._session is None or self._session.broken:
                try:
                    # (`--`: the container's id is never read as an option.)
                    self._session = ShellSession([self.docker_cmd, "exec", "-i", "--",
                                                  self.container_id, "/bin/sh"])
                except SessionError:
                    self._use_session = False
                    self._session = None
                    return None
            if self._session.lock.acquire(blocking=False):
                return self._session
            return None

    def run_shell_command(self, command, print_output: bool = False, print_input: bool = False,
                          **arguments):
        if print_output or any(arguments.get(name) for name in (*OWN_WAY, "_sudo")):
            return super().run_shell_command(command, print_output=print_output,
                                             print_input=print_input, **arguments)
        session = self._take()
        if session is None:
            return super().run_shell_command(command, print_output=print_output,
                                             print_input=print_input, **arguments)
        try:
            own = dict(arguments)
            control = extract_control_arguments(own)
            unix_command = make_unix_command_for_host(self.state, self.host, command, **own)
            if print_input:
                echo(f"{self.host.print_prefix}>>> {unix_command}", err=True)
            try:
                rc, out, err = session.run(unix_command.get_raw_value())
            except SessionError as error:
                if not error.ran:
                    raise
                # (not run again: it may have done its work, or part of it)
                rc, out, err = 255, b"", (f"dlws: the container's shell session ended while "
                                          f"this command ran ({error}); its exit status is "
                                          "unknown").encode()
        except SessionError:
            # The session could not take the command: it goes pyinfra's own way.
            return super().run_shell_command(command, print_output=print_output,
                                             print_input=print_input, **arguments)
        finally:
            session.lock.release()
        codes = control.get("_success_exit_codes")
        status = rc in codes if codes else rc == 0
        return status, CommandOutput(lines(out, "stdout") + lines(err, "stderr"))

    def put_file(self, filename_or_io, remote_filename, remote_temp_filename=None,
                 print_output: bool = False, print_input: bool = False, **arguments) -> bool:
        with get_file_io(filename_or_io) as file_io:
            data = file_io.read()
        if isinstance(data, str):
            data = data.encode()
        if len(data) <= SESSION_UPLOAD_MAX and self._upload(data, remote_filename, print_input):
            if print_output:
                echo(f"{self.host.print_prefix}file uploaded to container: {remote_filename}",
                     err=True)
            return True
        return super().put_file(BytesIO(data), remote_filename, remote_temp_filename,
                                print_output=print_output, print_input=print_input, **arguments)

    def _upload(self, data: bytes, remote_filename: str, print_input: bool) -> bool:
        """`data` written to `remote_filename` through the session; False where it was not
        (no session, a path that is not absolute, a command longer than one argument may be, a
        session user other than root, or the command failed: its new file removed).
        (A relative path is `docker cp`'s: from the container's root, not from its folder.)"""
        if not posixpath.isabs(remote_filename):
            return False
        command = upload_command(data, remote_filename)
        if len(command.encode()) > ONE_ARGUMENT_MAX:
            return False
        session = self._take()
        if session is None:
            return False
        if print_input:
            echo(f"{self.host.print_prefix}>>> (through the session) {len(data)} bytes to "
                 f"{shlex.quote(remote_filename)}", err=True)
        try:
            rc, _, _ = session.run(command)
        except SessionError:
            return False  # (`docker cp` writes it again, whole: an upload can be done twice)
        finally:
            session.lock.release()
        return rc == 0

    def disconnect(self) -> None:
        with self._opening:
            if self._session is not None and not self._session.broken:
                self._session.close()
            self._session = None
        super().disconnect()


def upload_command(data: bytes, remote_filename: str) -> Command:
    """The session's command that writes `data` to `remote_filename` (absolute): into a new
    file, 0600, in a mktemp folder beside it, renamed onto it; the folder removed, whether it
    succeeds or not. Only as root (`docker cp` writes as root)."""
    # (A folder of its own beside the destination, not a file: a file left there by a session
    # killed mid-write could be read as a config part, as apt reads apt.conf.d's.)
    template = posixpath.join(posixpath.dirname(remote_filename), ".dlws-upload.XXXXXXXXXX")
    return sh("test \"$(id -u)\" = 0 || exit 1; umask 077; d=$(mktemp -d -- {}) || exit 1; "
              "if printf '%s' {} | base64 -d >\"$d/f\" && mv -f -T -- \"$d/f\" {}; "
              "then rmdir -- \"$d\"; exit 0; fi; rm -rf -- \"$d\"; exit 1",
              template, base64.b64encode(data).decode("ascii"), remote_filename)


def use_sessions(state) -> None:
    """Give each `@docker/` host of this run `SessionDockerConnector`, each SSH host
    `SudoStdinSSHConnector` and `@local` `SudoStdinLocalConnector`, before pyinfra's State
    builds its connectors (nothing where it has built them already).

    + state: a State, or pyinfra's `state` (the configs': the State of the running command)
    """
    # (pyinfra's `state` is a proxy of the context's State; a State given is used as it is)
    real = state if isinstance(state, State) or not ctx_state.isset() else ctx_state.get()
    if getattr(real, "initialised", False):
        return

    def own_connectors(hosts) -> None:
        use_connector(hosts, DockerConnector, SessionDockerConnector)
        use_connector(hosts, SSHConnector, SudoStdinSSHConnector)
        use_connector(hosts, LocalConnector, SudoStdinLocalConnector)

    before_init(real, own_connectors)

