"""One long-lived shell per host for verify's many short commands.

testinfra's docker backend starts `docker exec` for each command: about 70 ms of CPU on this
machine's side (the client, dockerd, containerd, runc) for a command that itself takes a
millisecond, and verify runs some 80 of them per host. Its ssh backend starts an `ssh` for each,
a connection of its own (key exchange and login) unless the user's ssh config shares one.
`SessionDockerBackend` keeps `docker exec -i CONTAINER /bin/sh` open, `SessionSshBackend` the
same `ssh ... HOST /bin/sh` testinfra would start, and each command runs in it as its own
`/bin/sh -c`: a fork on the host.

What the session shell reads is only this module's fixed lines (`ShellSession`), with the
command as one quoted word: the command runs in a child shell of its own, its stdin from
/dev/null, so it can neither change the session's state nor read the session's input. Its exit
status and the end of each stream are told by a marker drawn at random for each command. Where
no session can serve a command (each is busy with another thread's, or none starts), the command
runs through testinfra's own backend (`docker exec`, `ssh`), as before.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import os
import re
import secrets
import selectors
import shutil
import subprocess
import tempfile
import threading
from typing import Any

import testinfra
from testinfra.backend import base, parse_hostspec
from testinfra.backend.docker import DockerBackend
from testinfra.backend.ssh import SshBackend
from testinfra.host import Host

from dlws.command import sh


class SessionError(RuntimeError):
    """The session could not run a command (it ended, or printed something unreadable);
    `ran`: the command was handed to the shell, and may have run, whole or in part."""

    def __init__(self, message: str, ran: bool = False) -> None:
        super().__init__(message)
        self.ran = ran


class ShellSession:
    """A shell process whose stdin takes `_LINE`s; `run(command)` -> (rc, stdout, stderr)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None,
                 input_line: str | None = None) -> None:
        """Start the shell (`env`: its process's environment, None for this one's), and wait
        for its first answer: a private folder for the commands' output (removed when the shell
        ends), and a marker on each stream. Raises SessionError (ran False) where it gives none:
        a command never reaches a session that did not start.

        `input_line`: a line `run(command, feed=True)` gives the command on its stdin (a sudo
        password). The session shell keeps it in a variable it never exports, set by the first
        line it reads: it reaches no command line and no process's environment, and each
        command gets it from the shell's builtin printf through a pipe.
        """
        if input_line is not None and re.search(r"[\x00\n\r]", input_line):
            raise ValueError("the session's input line holds a NUL or a line break")
        self.lock = threading.Lock()
        self.broken = False
        self._process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env)
        marker = secrets.token_hex(16)
        try:
            self._process.stdin.write(sh(
                "I={}; D=$(mktemp -d \"${{TMPDIR:-/tmp}}/dlws-session.XXXXXXXXXX\") || exit 1; "
                "trap 'rm -rf \"$D\"' EXIT; printf '%s 0\\n' {}; printf '%s\\n' {} >&2\n",
                input_line or "", marker, marker).encode())
            self._process.stdin.flush()
            self._collect(marker.encode())
        except (OSError, ValueError, SessionError) as error:
            self.close()
            raise SessionError(f"the session did not start: {error}") from error

    def run(self, command: str, feed: bool = False) -> tuple[int, bytes, bytes]:
        """Run one command; the caller holds `lock`. Its stdin is /dev/null, or with `feed` the
        session's input line. Raises SessionError (and closes the session) where the shell ended
        or its output does not end with this command's marker; `ran` is then True: the command
        may have run."""
        if self.broken:
            raise SessionError("the session has ended")
        marker = secrets.token_hex(16)
        # The command's output goes into files of its own (a process it leaves behind writes
        # there, not into the next command's output), then each file and the marker with the exit
        # status. The child opens the files and execs the command's shell, so the session shell's
        # own word on a child a signal killed ("Killed", on its stderr) goes to /dev/null. (The
        # command as text: a dlws.command Command would go in as shell syntax, not as one word.)
        # (`feed`: the child's stdin is a pipe from the shell's builtin printf of "$I".)
        child = (sh("printf '%s\\n' \"$I\" | /bin/sh -c 'exec /bin/sh -c \"$2\" >\"$0\" "
                    "2>\"$1\"'") if feed else
                 sh("/bin/sh -c 'exec /bin/sh -c \"$2\" </dev/null >\"$0\" 2>\"$1\"'"))
        line = sh("{{ {} \"$D/o\"{} \"$D/e\"{} {}; }} 2>/dev/null; r=$?; cat \"$D/o\"{}; "
                  "printf '%s %d\\n' {} \"$r\"; cat \"$D/e\"{} >&2; printf '%s\\n' {} >&2; "
                  "rm -f \"$D/o\"{} \"$D/e\"{}\n",
                  child, marker, marker, str.__str__(command), *[marker] * 6)
        try:
            self._process.stdin.write(line.encode())
            self._process.stdin.flush()
            return self._collect(marker.encode())
        except (OSError, ValueError, SessionError) as error:
            self.close()
            raise SessionError(str(error) or type(error).__name__, ran=True) from error

    def _collect(self, marker: bytes) -> tuple[int, bytes, bytes]:
        ends = {"out": re.compile(rb"(?s)\A(.*)" + marker + rb" (-?\d+)\n\Z"),
                "err": re.compile(rb"(?s)\A(.*)" + marker + rb"\n\Z")}
        found = {"out": bytearray(), "err": bytearray()}
        done: dict[str, re.Match] = {}
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ, "out")
            selector.register(self._process.stderr, selectors.EVENT_READ, "err")
            while len(done) < 2:
                for key, _ in selector.select():
                    chunk = os.read(key.fileobj.fileno(), 1 << 16)
                    if not chunk:
                        raise SessionError("the session's shell ended")
                    found[key.data] += chunk
                    # (Nothing follows a marker on its stream until the next command's line.)
                    if found[key.data].endswith(b"\n") and marker in found[key.data]:
                        match = ends[key.data].match(bytes(found[key.data]))
                        if match is None:
                            raise SessionError("output after the command's end marker")
                        done[key.data] = match
                        selector.unregister(key.fileobj)
        return int(done["out"][2]), done["out"][1], done["err"][1]

    def close(self) -> None:
        self.broken = True
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()  # (the shell ends at the end of its input)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            with contextlib.suppress(OSError):  # (a line the dead shell never read)
                stream.close()


class _Sessions:
    """ShellSessions for a testinfra backend (mixed in before it): each command in the first
    free session, or a new one where every open one is busy with another thread's command
    (verify's background checks), up to `MAX_SESSIONS`; beyond that, or where no session
    starts, the backend's own way (one process per command), as before. The backend names the
    session's process (`session_argv`)."""

    MAX_SESSIONS = 4
    # The environment of the local processes (sessions, and the backend's own `run_local`):
    # None for this process's own.
    local_env: dict[str, str] | None = None
    # A line each command reads on its stdin (a sudo password; SessionSshBackend), None for
    # /dev/null: a session keeps it (ShellSession's input_line), a local process gets it on
    # its stdin.
    input_line: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions: list[ShellSession] = []
        self._opening = threading.Lock()
        self._use_sessions = True  # (False once a session failed to start: no more tries)

    def session_argv(self) -> list[str]:
        raise NotImplementedError

    def _take(self) -> ShellSession | None:
        """A session, its lock held for the caller; None where none can be had."""
        if not self._use_sessions:
            return None
        with self._opening:
            self._sessions = [s for s in self._sessions if not s.broken]
            for session in self._sessions:
                if session.lock.acquire(blocking=False):
                    return session
            if len(self._sessions) >= self.MAX_SESSIONS:
                return None
            try:
                session = ShellSession(self.session_argv(), env=self.local_env,
                                       input_line=self.input_line)
            except SessionError:
                self._use_sessions = False
                return None
            session.lock.acquire()
            self._sessions.append(session)
            return session

    def plain(self):
        """A copy that runs each command the backend's own way (dlws.live streams a long
        command's lines through it)."""
        other = copy.copy(self)
        other._use_sessions = False
        return other

    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        line = self.get_command(command, *args)
        session = self._take()
        if session is not None:
            try:
                rc, out, err = session.run(line, feed=self.input_line is not None)
            except SessionError as error:
                if error.ran:  # (not run again: it may have done its work, or part of it)
                    return self.result(255, self.encode(line), b"", (
                        f"dlws: the shell session ended while this command ran ({error}); "
                        "its exit status is unknown").encode())
                # (that session could not start: this command goes the backend's own way)
            else:
                return self.result(rc, self.encode(line), out, err)
            finally:
                session.lock.release()
        return super().run(command, *args, **kwargs)

    def run_local(self, command: str, *args: str) -> base.CommandResult:
        """testinfra 10's BaseBackend.run_local (the same quoting, encoding and result), its
        process given `local_env`, and `input_line` on its stdin."""
        line = self.encode(self.quote(command, *args))
        process = subprocess.Popen(line, shell=True, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=self.local_env)
        stdout, stderr = process.communicate(local_input(self))
        return self.result(process.returncode, line, stdout, stderr)

    def close(self) -> None:
        with self._opening:
            for session in self._sessions:
                if not session.broken:
                    session.close()
            self._sessions = []


class SessionDockerBackend(_Sessions, DockerBackend):
    """testinfra's docker backend, its commands in `docker exec -i CONTAINER /bin/sh`
    sessions; `docker exec` per command where none serves."""

    NAME = "docker"

    def session_argv(self) -> list[str]:
        user = ("-u", self.user) if self.user is not None else ()
        # (`--`: the container's name is never read as an option.)
        return ["docker", "exec", "-i", *user, "--", self.name, "/bin/sh"]


class SessionSshBackend(_Sessions, SshBackend):
    """testinfra's ssh backend, its commands in `ssh HOST /bin/sh` sessions: one connection
    (key exchange and login) per session, not per command; testinfra's own `ssh` per command
    where none serves (and its error where the host cannot be reached)."""

    NAME = "ssh"

    def __init__(self, *args: Any, ssh_password: str | None = None,
                 sudo_password: str | None = None, **kwargs: Any) -> None:
        """+ ssh_password: the inventory's password for this host (pyinfra's `ssh_password`).
        OpenSSH reads it from `askpass_program()`, which prints it from this backend's
        processes' environment: never on a command line, where every user of the controller
        could read it.
        + sudo_password: the password sudo asks for (pyinfra's `_sudo_password`), where the
        spec says sudo. Each command's sudo reads it on its stdin (`sudo -S`), from the session
        shell's variable or the local ssh's stdin: never on a command line or in a file on
        either machine (pyinfra's own `_sudo_password` puts it on the host's `env` command
        line)."""
        super().__init__(*args, **kwargs)
        if ssh_password is not None:
            self.local_env = {**os.environ, "SSH_ASKPASS": askpass_program(),
                              "SSH_ASKPASS_REQUIRE": "force", ASKPASS_VARIABLE: ssh_password}
        if sudo_password is not None and self.sudo:
            self.input_line = sudo_password

    def get_sudo_command(self, command: str, sudo_user: str | None) -> str:
        """testinfra's `sudo /bin/sh -c COMMAND`; with a sudo password, sudo reads it on stdin
        (-S, no prompt, -k: never a credential cached by an earlier command, as pyinfra asks),
        and the command runs with stdin from /dev/null: it never reads the password, whether
        sudo asked for it or not (NOPASSWD)."""
        if self.input_line is None:
            return super().get_sudo_command(command, sudo_user)
        if sudo_user is None:
            return self.quote("sudo -S -p '' -k -- /bin/sh -c "
                              "'exec /bin/sh -c \"$1\" </dev/null' sh %s", command)
        return self.quote("sudo -S -p '' -k -u %s -- /bin/sh -c "
                          "'exec /bin/sh -c \"$1\" </dev/null' sh %s", sudo_user, command)

    def session_argv(self) -> list[str]:
        # testinfra's own ssh line for this host (its options, user, port, key, config), run
        # as it runs it (`sh -c`), with `/bin/sh` as the remote command.
        ssh, values = self._build_ssh_command("/bin/sh")
        return ["/bin/sh", "-c", self.quote(" ".join(ssh), *values)]


def local_input(backend: Any) -> bytes | None:
    """What a backend's local process (ssh, docker exec) gets on its stdin: its `input_line`
    and a newline, or nothing."""
    line = getattr(backend, "input_line", None)
    return None if line is None else (line + "\n").encode()


# The variable the askpass program prints (ssh hands it no argument that says which host).
ASKPASS_VARIABLE = "DLWS_SSH_PASSWORD"
_ASKPASS: list[str] = []


def askpass_program() -> str:
    """A program that prints $DLWS_SSH_PASSWORD for ssh (SSH_ASKPASS): written once per
    process into a folder of its own, readable by this user alone, removed at exit."""
    if not _ASKPASS:
        folder = tempfile.mkdtemp(prefix="dlws-askpass-")
        atexit.register(shutil.rmtree, folder, True)
        path = os.path.join(folder, "askpass")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o700)
        with os.fdopen(descriptor, "w") as program:
            program.write('#!/bin/sh\nprintf \'%s\\n\' "$' + ASKPASS_VARIABLE + '"\n')
        _ASKPASS.append(path)
    return _ASKPASS[0]


# verify's hosts of docker:// and ssh:// specs, one per spec and process (testinfra's own cache
# keeps its plain hosts).
_HOSTS: dict[str, Host] = {}
_BACKENDS = {"docker": SessionDockerBackend, "ssh": SessionSshBackend}
PASSWORDS = {"ssh_password", "sudo_password"}  # (SessionSshBackend's own options)


def get_host(spec: str, sessions: bool = True, **extra: str) -> Host:
    """testinfra's host for `spec` (and backend options its spec cannot carry: `extra`, as
    testinfra.get_host takes them); a docker:// or ssh:// one runs its commands in
    ShellSessions (the spec read by testinfra's own parser, as testinfra.get_host reads it).
    `sessions` False, or DLWS_SESSIONS=0: testinfra's own host, one process per command (for
    an SSH host with an ssh or sudo password, this module's backend, one process per
    command)."""
    name, options = parse_hostspec(spec)
    kind = options.pop("connection", None)
    sessions = sessions and os.environ.get("DLWS_SESSIONS", "1") != "0"
    # (A password only this module's ssh backend takes: it is never given to testinfra's.)
    if kind not in _BACKENDS or (not sessions and not PASSWORDS & set(extra)):
        return testinfra.get_host(spec, **extra)
    key = (spec, sessions, tuple(sorted(extra.items())))
    if key not in _HOSTS:
        backend = _BACKENDS[kind](name, **{**extra, **options})
        backend._use_sessions = sessions
        _HOSTS[key] = Host(backend)
        backend.set_host(_HOSTS[key])
    return _HOSTS[key]


def close_all() -> None:
    """End every session this process opened (each shell removes its folder as it exits)."""
    for host in _HOSTS.values():
        host.backend.close()
