"""pyinfra's SSH and local connectors, with the sudo password on sudo's stdin, not a command line.

pyinfra's own way with `_sudo_password` (and with the password it asks for when sudo needs one)
uploads an askpass script and runs each command as `env SUDO_ASKPASS=... PYINFRA_SUDO_PASSWORD=
PASSWORD sudo -H -A -k ...`: the password is on the host's command lines, where any local user
can read it (`ps`, /proc/PID/cmdline), and in the environment of the processes it starts.

`SudoStdin` (in `SudoStdinSSHConnector`, `SudoStdinLocalConnector`, and the docker connector of
dlws.docker_connector) runs the same command as `sudo -H -S -p '' -k ... sh -c 'exec </dev/null
&& ...'` and writes the password to the command's stdin (the SSH channel's, the local
process's, `docker exec -i`'s): sudo reads it there, asks no prompt, forgets it after each
command (-k, as pyinfra), and the command itself reads /dev/null, so it never sees the
password, even where sudo asks for none (NOPASSWD). The password is on no
command line and in no environment, on either machine: verify's sudo does the same
(dlws.shell_session.SessionSshBackend).

`SudoStdinSSHConnector` also passes what root copies into place (an upload) or out (a download)
through a folder of the login user's own (not /tmp), and turns Nagle's algorithm off on its
connection.

Where sudo needs a password that the inventory does not give, pyinfra asks for it once per host
(`sudo: a password is required`), as before; the command then runs again this way, and so does
every later one. Every other command, and every command of a host without `_sudo`, goes
pyinfra's own way.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any

import click
from pyinfra import logger
from pyinfra.api.command import QuoteString, StringCommand
from pyinfra.api.exceptions import PyinfraError
from pyinfra.connectors.local import LocalConnector
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.util import make_unix_command_for_host

# The arguments pyinfra's connectors take for themselves before they build the command line.
OWN = ("_get_pty", "_timeout", "_stdin", "_success_exit_codes")
# The arguments that make the sudo part of pyinfra's command line (written here instead).
SUDO = ("_sudo", "_sudo_user", "_use_sudo_login", "_preserve_sudo_env", "_sudo_password")
PROMPTED = "prompted_sudo_password"  # (where pyinfra keeps the password it asked for)


def sudo_stdin_command(state, host, command: StringCommand, arguments: dict) -> StringCommand:
    """pyinfra's command line for `command` with `arguments` (its `_sudo` set), its sudo
    reading the password on stdin (`-S`, no prompt, no cached credentials) and the command
    itself reading /dev/null."""
    inner = {key: value for key, value in arguments.items() if key not in SUDO}
    if inner.get("_shell_executable", "sh") is None:
        inner["_shell_executable"] = "sh"  # (the redirection needs a shell)
    # (doas, dzdo, su, the environment, the folder and the shell: as pyinfra writes them)
    rest = make_unix_command_for_host(
        state, host, StringCommand("exec", "</dev/null", "&&", command), **inner)
    bits: list = ["sudo", "-H", "-S", "-p", QuoteString(""), "-k"]
    if arguments.get("_use_sudo_login"):
        bits.append("-i")
    if arguments.get("_preserve_sudo_env"):
        bits.append("-E")
    if arguments.get("_sudo_user"):
        bits.extend(("-u", QuoteString(arguments["_sudo_user"])))
    return StringCommand(*bits, rest)


class SudoStdin:
    """A pyinfra connector's `run_shell_command`, its sudo reading the password on stdin (put
    before the connector's class: `class C(SudoStdin, SSHConnector)`)."""

    host: Any
    state: Any

    def _password(self, arguments: dict) -> str | None:
        password = arguments.get("_sudo_password") or self.host.connector_data.get(PROMPTED)
        if not password:
            return None
        if any(char in password for char in "\0\r\n"):
            # (the inventory check refuses these before anything connects)
            raise PyinfraError(f"{self.host.name}: the sudo password holds a NUL or a line "
                               "break; sudo reads one line")
        return password

    def run_shell_command(self, command, print_output: bool = False, print_input: bool = False,
                          **arguments):
        if not arguments.get("_sudo"):
            return super().run_shell_command(command, print_output=print_output,
                                             print_input=print_input, **arguments)
        own = {name: arguments.pop(name) for name in OWN if name in arguments}
        password = self._password(arguments)
        if password is None:
            # pyinfra's `sudo -n`, built here so that pyinfra's retry after asking for the
            # password runs it unchanged (it fails again at once, asking nothing) rather than
            # pyinfra's askpass line; the password it asked for is then used as given.
            line = make_unix_command_for_host(self.state, self.host, command, **arguments)
            status, output = super().run_shell_command(
                line, print_output=print_output, print_input=print_input,
                _shell_executable=None, **own)
            password = None if status else self._password(arguments)
            if password is None:
                return status, output
        if own.get("_stdin") or own.get("_get_pty"):
            # (sudo reads the password from stdin: a terminal would echo it, and a command fed
            # its own input would read the password too where sudo asks none; dlws's deploy
            # has neither)
            raise PyinfraError(f"{self.host.name}: a command with its own input or a terminal "
                               "cannot run with sudo's password on stdin")
        line = sudo_stdin_command(self.state, self.host, command, arguments)
        own["_stdin"] = password
        return super().run_shell_command(line, print_output=print_output,
                                         print_input=print_input, _shell_executable=None, **own)


# The arguments that make a command run as another user (pyinfra's put_file copies an upload
# into place with them, from a temporary copy the login user writes).
AS_OTHER = (*SUDO, "_doas", "_doas_user", "_dzdo", "_dzdo_user", "_su_user", "_su_password",
            "_use_su_login", "_preserve_su_env", "_su_shell", "_chdir")
# What `mktemp -d` may answer: pyinfra writes the copy's path unquoted into its `cp` and `rm`
# lines, so the host's answer (its TMPDIR) is held to plain path characters, matched in full.
FOLDER = re.compile(r"/[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}")  # a copy's name in that folder


def _as_login(arguments: dict) -> dict:
    """`arguments` less those that run a command as another user: the login user's own."""
    return {key: value for key, value in arguments.items() if key not in AS_OTHER}


class SudoStdinSSHConnector(SudoStdin, SSHConnector):
    """`SSHConnector` whose sudo reads the password on the channel's stdin, and whose uploads
    as root pass through a folder of the login user's own."""

    # The login user's upload folder on the host (`mktemp -d`), made at the first upload as
    # root after each connection (a reboot empties /tmp), removed when pyinfra disconnects.
    _folder: str | None = None

    def connect(self) -> None:
        self._folder = None
        super().connect()
        # Nagle's algorithm off, as OpenSSH has it: paramiko sets no socket option, so a small
        # packet (a channel's request, its stdin, an SFTP request) waits for the ACK of the
        # last, which the host's delayed ACK holds up to 40 ms (Cheshire, "TCP Performance
        # problems caused by interaction between Nagle's Algorithm and Delayed ACK";
        # ronf/asyncssh#50). Measured by bench/sudo_connector.py: an upload as root 99 ms
        # with it on, 14 ms off; a command through sudo with a password 61 ms, 43 ms off.
        sock = getattr(self.client.get_transport(), "sock", None) if self.client else None
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def disconnect(self) -> None:
        folder, self._folder = self._folder, None
        if folder:
            try:
                super().run_shell_command(StringCommand("rm", "-rf", "--", QuoteString(folder)))
            except Exception as error:  # noqa: BLE001 - a host already gone keeps it
                logger.warning(f"{self.host.name}: could not remove {folder}: {error}")
        super().disconnect()

    def put_file(self, filename_or_io, remote_filename, remote_temp_filename=None,
                 print_output: bool = False, print_input: bool = False, **arguments) -> bool:
        """pyinfra's upload; where root copies it into place (sudo, doas, dzdo, su to root),
        its temporary copy lies in a folder of the login user's (`mktemp -d`: mode 700) and is
        made mode 600 before the copy, so a file the copy creates starts root-only until the
        operation gives it its mode. pyinfra's own copy, /tmp/pyinfra-HASH (mode 644 from
        sftp-server; files.put and files.template name it), and a new file copied from it,
        could be read by anyone on the host until then (a secret among them: a proxy
        password, an index token)."""
        if self._root_copies(arguments):
            remote_temp_filename = self._private_copy(remote_filename, remote_temp_filename,
                                                      arguments)
        return super().put_file(filename_or_io, remote_filename, remote_temp_filename,
                                print_output=print_output, print_input=print_input,
                                **arguments)

    def get_file(self, remote_filename, filename_or_io, remote_temp_filename=None,
                 print_output: bool = False, print_input: bool = False, **arguments) -> bool:
        """pyinfra's download; where root reads the file (sudo, or su to root, as pyinfra's),
        root copies it into the same folder of the login user's, 600 and the login user's,
        who downloads it and removes it. pyinfra's own copy, /tmp/pyinfra-HASH, is made
        readable by all (`chmod +r`) until the download ends, and root's `cp` writes through
        whatever link another user planted at that name, known beforehand."""
        if not (arguments.get("_sudo") or arguments.get("_su_user")) \
                or not self._root_copies(arguments):
            return super().get_file(remote_filename, filename_or_io, remote_temp_filename,
                                    print_output=print_output, print_input=print_input,
                                    **arguments)
        copy = self._private_copy(remote_filename, remote_temp_filename, arguments)
        folder = copy.rsplit("/", 1)[0]
        # The copy starts 600 (umask), replaces a name already there rather than writing
        # through it, and is given to the folder's owner, never what a link names (-h).
        ok, output = self.run_shell_command(
            StringCommand("umask", "077", "&&", "cp", "--remove-destination", "--",
                          QuoteString(remote_filename), QuoteString(copy), "&&", "chown", "-h",
                          "--reference", QuoteString(folder), "--", QuoteString(copy)),
            print_output=print_output, print_input=print_input, **arguments)
        if not ok:
            logger.error(f"{self.host.name}: could not copy {remote_filename} to download it: "
                         f"{output.stderr.strip()[:300]}")
            return False
        try:
            self._get_file(copy, filename_or_io)
        finally:
            removed, output = super().run_shell_command(
                StringCommand("rm", "-f", "--", QuoteString(copy)), **_as_login(arguments))
        if not removed:
            logger.error(f"{self.host.name}: could not remove {copy}: "
                         f"{output.stderr.strip()[:300]}")
            return False
        if print_output:
            click.echo(f"{self.host.print_prefix}file downloaded: {remote_filename}", err=True)
        return True

    @staticmethod
    def _root_copies(arguments: dict) -> bool:
        """True where root copies the file (sudo, doas, dzdo, su to root): another user could
        not reach the login user's folder."""
        as_root = any(arguments.get(name) for name in ("_sudo", "_doas", "_dzdo", "_su_user"))
        other = any(arguments.get(name) not in (None, False, "root")
                    for name in ("_sudo_user", "_doas_user", "_dzdo_user", "_su_user"))
        return as_root and not other

    def _private_copy(self, remote_filename: str, temp: str | None, arguments: dict) -> str:
        """Where the copy root makes or takes lies: in the login user's folder, named as
        pyinfra names it (the name the operation chose, where it is plain)."""
        folder = self._upload_folder(arguments)
        name = os.path.basename(temp or "")
        if NAME.fullmatch(name):
            return "/".join((folder, name))
        return self.host.get_temp_filename(remote_filename, temp_directory=folder)

    def _upload_folder(self, arguments: dict) -> str:
        if self._folder is None:
            ok, output = super().run_shell_command(StringCommand("mktemp", "-d"),
                                                   **_as_login(arguments))
            folder = output.stdout.strip()
            if not ok or not FOLDER.fullmatch(folder) or "/../" in f"{folder}/":
                raise PyinfraError(f"{self.host.name}: no private folder for uploads: `mktemp "
                                   f"-d` gave {folder[:200]!r}, not a plain absolute path "
                                   f"({output.stderr.strip()[:300]})")
            self._folder = folder
        return self._folder

    def _put_file(self, filename_or_io, remote_location) -> None:
        super()._put_file(filename_or_io, remote_location)
        if self._folder and remote_location.startswith(self._folder + "/"):
            if self.data["ssh_file_transfer_protocol"] == "sftp":
                self.get_file_transfer_connection().chmod(remote_location, 0o600)
                return
            ok, output = super().run_shell_command(
                StringCommand("chmod", "600", "--", QuoteString(remote_location)))
            if not ok:
                raise PyinfraError(f"{self.host.name}: chmod 600 {remote_location}: "
                                   f"{output.stderr.strip()[:300]}")


class SudoStdinLocalConnector(SudoStdin, LocalConnector):
    """`LocalConnector` (`@local`) whose sudo reads the password on the process's stdin."""
