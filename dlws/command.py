"""The one way a value reaches a host's shell: argument lists and literal templates, each value quoted."""

from __future__ import annotations

import shlex
from collections.abc import Iterable


class Command(str):
    """A shell line built by this module: every value in it went through `shlex.quote`."""


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
    return Command(shlex.join(_text(a) for a in argv))


def sh(template: str, *values: object) -> Command:
    """A literal shell template whose `{}` holes are filled with quoted values.

    `sh("test -L {} || chown -h root {}", path, path)`. The template must be a string literal at
    the call site (tests/test_command_builder.py holds every caller to that); a value can never
    become shell syntax or an option's neighbour without quotes.
    """
    if isinstance(template, Command):
        raise TypeError("sh() takes a literal template, not a built command")
    return Command(template.format(*(shlex.quote(_text(v)) for v in values)))


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
    return Command(operator.join(f"{{ {part}; }}" if len(parts) > 1 else part for part in parts))
