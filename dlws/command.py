"""The one way a value reaches a host's shell: argument lists and literal templates."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


class Command(str):
    """A shell line built by this module: every value in it went through `shlex.quote`."""


class _Simple(Command):
    """One simple command (`cmd()`): joined with others it needs no braces."""


def _text(value: object) -> str:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"a command argument must be text or a number, not {value!r}")
    text = str(value)
    if "\x00" in text:
        raise ValueError("a command argument cannot hold a NUL byte")
    return text


def cmd(*argv: object) -> Command:
    """One command from its arguments, each quoted: `cmd("chown", "-h", "root:lab", path)`."""
    if not argv:
        raise ValueError("a command needs at least a program")
    return _Simple(shlex.join(_text(a) for a in argv))


def sh(template: str, *values: object) -> Command:
    """A literal shell template whose `{}` holes are filled with quoted values.

    `sh("test -L {} || chown -h root {}", path, path)`. The template must be a string literal at
    the call site (tests/test_command_builder.py holds every caller to that); a value can never
    become shell syntax or an option's neighbour without quotes. A value that is itself a built
    `Command` goes in as the shell text it is (`sh("set -a && . {} && {}", env_file, command)`):
    its own values were quoted when it was built.
    """
    if isinstance(template, Command):
        raise TypeError("sh() takes a literal template, not a built command")
    return Command(template.format(*(v if isinstance(v, Command) else shlex.quote(_text(v))
                                     for v in values)))


def all_of(commands: Iterable[Command]) -> Command:
    """Built commands run in order, stopping at the first failure (`a && b`)."""
    return _joined(commands, " && ")


def any_of(commands: Iterable[Command]) -> Command:
    """Built commands tried in order until one succeeds (`a || b`)."""
    return _joined(commands, " || ")


def _joined(commands: Iterable[Command], operator: str) -> Command:
    parts = list(commands)
    for part in parts:
        if not isinstance(part, Command):
            raise TypeError(f"only built commands can be joined, not {part!r}")
    if not parts:
        raise ValueError("nothing to join")
    if len(parts) == 1:
        return parts[0]
    # A line from sh() can hold `;`, `||`, `&&` or a trailing comment: braces keep it one unit.
    return Command(operator.join(
        part if isinstance(part, _Simple) else f"{{ {part}\n}}" for part in parts))
