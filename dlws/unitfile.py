"""Values in systemd unit files, escaped as systemd.syntax(7) and systemd.service(5) read them."""

from __future__ import annotations


def _checked(value: object) -> str:
    text = str(value)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError(f"{text!r} holds a control character: it cannot go in a unit file")
    return text


def setting(value: object) -> str:
    """A plain setting's value (a path, a description): `%` specifiers made literal."""
    text = _checked(value)
    if text != text.strip():
        raise ValueError(f"{text!r} starts or ends with white space: systemd would drop it")
    return text.replace("%", "%%")


def word(value: object) -> str:
    """One word of a command line or an assignment list: double-quoted, with `\\`, `"`, `%` and
    `$` escaped (systemd.service(5) "Command lines": quoting, specifiers, variables)."""
    text = _checked(value)
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%").replace("$", "$$") + '"'


def exec_line(*argv: object) -> str:
    """`ExecStart=`'s value: a command whose every argument is one quoted word."""
    if not argv:
        raise ValueError("a command needs at least a program")
    return " ".join(word(a) for a in argv)


def environment(name: str, value: object) -> str:
    """`Environment=`'s value for one variable (systemd.exec(5): quoted NAME=value)."""
    if not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"{name!r} is not an environment variable name")
    text = _checked(value)
    escaped = f"{name}={text}".replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("%", "%%") + '"'
