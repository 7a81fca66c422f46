"""Every command sent to a host is built by dlws/command.py (or by pyinfra's/testinfra's quoting).

The check walks the AST of roles/, verify/, dlws/ and deploy/ and proves each command safe from
what it is made of; anything it cannot prove is a failure (a whitelist, not a list of bad forms):

- sinks: `commands=`/`command=` keywords (server.shell, facts), the command argument of
  `.run`, `.run_shell_command`, `.check_output`, `.run_test`, `.run_expect`, the return values
  of a fact's `command()` (and a class's `command = ...`), what an `@operation` yields, the
  return values of a function annotated `-> Command`, and the arguments given to parameters
  annotated `Command`;
- safe: a string literal; `cmd(...)`, `sh("literal", ...)`, `all_of(...)`, `any_of(...)`; a call
  of a function annotated `-> Command`; a parameter annotated `Command`; a name whose every
  assignment (in its function, else its module) is safe; a literal list, tuple, dict or
  conditional of safe parts; pyinfra's `StringCommand` of literals and `QuoteString(...)`;
  upload/download/function commands (no shell); testinfra's `host.run("literal %s", value)`,
  which quotes each value itself; a subprocess argument list (no shell) unless it holds "-c";
- everything else fails: f-strings with a value, `%`, `+`, `.format`, `" ".join`, `shlex.join`,
  `shlex.quote` outside the builder, attributes, calls of anything else.

`sh()`'s template must be a string literal everywhere, and only dlws/command.py makes a
`Command` directly.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("roles", "verify", "dlws", "deploy")
BUILDER = ROOT / "dlws" / "command.py"
BUILDERS = {"cmd", "sh", "all_of", "any_of"}
RUNNERS = {"run", "run_shell_command", "check_output", "run_test"}
COMMAND_KEYWORDS = {"commands", "command"}
# Sites that pass on text proven safe elsewhere, each with the reason.
ALLOWED_SITES = {
    ("dlws/facts/batch.py", "FactBatch.command"):
        "joins facts' own command() texts (each checked as a sink) with literal markers",
    ("dlws/facts/batch.py", "run_facts"): "runs FactBatch.command's text",
    ("dlws/facts/batch.py", "run_fact"):
        "runs a fact's command() (checked as a sink) behind its literal requires_command",
    ("dlws/facts/readers.py", "testinfra_reader.run"): "the runner of run_fact and run_facts",
    ("dlws/shell_session.py", "_Sessions.run"):
        "testinfra's transport: runs the text testinfra hands it, as testinfra's DockerBackend "
        "and SshBackend do, quoted into one word of the session's literal line "
        "(ShellSession.run)",
    ("dlws/docker_connector.py", "SessionDockerConnector.run_shell_command"):
        "pyinfra's transport: the command pyinfra hands its docker connector, made into the same "
        "text by pyinfra's make_unix_command_for_host as DockerConnector makes it, run as one "
        "quoted word of the session's literal line (ShellSession.run), or handed to "
        "DockerConnector itself",
    ("dlws/sudo_stdin.py", "SudoStdin.run_shell_command"):
        "pyinfra's transport: the command pyinfra hands its connector (SSH, local, docker), "
        "handed on to that connector itself, or made into text by pyinfra's "
        "make_unix_command_for_host as the connector makes it, behind a sudo prefix of "
        "literals and QuoteString (sudo_stdin_command)",
}
NO_SHELL = {"FileUploadCommand", "FileDownloadCommand", "FunctionCommand"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _annotated_command(annotation: ast.AST | None) -> bool:
    if annotation is None:
        return False
    if isinstance(annotation, ast.Constant) and annotation.value == "Command":
        return True
    return _name(annotation) == "Command"


class Module:
    """One source file: its functions, their scopes, and the verdict on each command in it."""

    def __init__(self, path: Path, tree: ast.Module, command_functions: set[str],
                 modules: dict[str, Module]):
        self.path = path
        self.tree = tree
        self.command_functions = command_functions
        self.modules = modules  # dotted name: Module, for names imported from scanned files
        self.parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self.problems: list[str] = []

    # -- where a name comes from -------------------------------------------------------------
    def _scope(self, node: ast.AST) -> ast.AST:
        current = self.parents.get(node)
        while current is not None and not isinstance(
                current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.Module)):
            current = self.parents.get(current)
        return current or self.tree

    def _assignments(self, scope: ast.AST, name: str) -> list[ast.AST] | None:
        """The values bound to `name` in `scope` (not in nested functions); None when unbound."""
        found: list[ast.AST] = []
        bound = False
        for node in self._walk_scope(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name) and sub.id == name:
                            bound = True
                            found.append(node.value if isinstance(target, ast.Name)
                                         else ast.Name(id="<unpacked>"))
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
                target = node.target
                if isinstance(target, ast.Name) and target.id == name:
                    bound = True
                    if node.value is None or (isinstance(node, ast.AugAssign)
                                              and not isinstance(node.op, ast.Add)):
                        found.append(ast.Name(id="<augmented>"))
                    else:
                        found.append(node.value)
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                for sub in ast.walk(node.target):
                    if isinstance(sub, ast.Name) and sub.id == name:
                        bound = True
                        found.append(ast.Starred(value=node.iter))  # an element of the iterable
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None and any(
                            isinstance(s, ast.Name) and s.id == name
                            for s in ast.walk(item.optional_vars)):
                        bound = True
                        found.append(ast.Name(id="<context>"))
        return found if bound else None

    def _walk_scope(self, scope: ast.AST):
        stack = list(ast.iter_child_nodes(scope))
        while stack:
            node = stack.pop()
            yield node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                 ast.ClassDef)):
                continue
            stack.extend(ast.iter_child_nodes(node))

    def _parameter(self, scope: ast.AST, name: str) -> ast.arg | None:
        if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return None
        args = scope.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs,
                    *filter(None, [args.vararg, args.kwarg])]:
            if arg.arg == name:
                return arg
        return None

    # -- the verdict -------------------------------------------------------------------------
    def safe(self, node: ast.AST, at: ast.AST, seen: frozenset = frozenset()) -> bool:
        """Whether `node` (an expression found at `at`) is proven to be built safely."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, (str, bytes, int, float)) or node.value is None
        if isinstance(node, ast.JoinedStr):
            return all(isinstance(v, ast.Constant) for v in node.values)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return all(self.safe(e, at, seen) for e in node.elts)
        if isinstance(node, ast.Dict):
            return all(v is not None and self.safe(v, at, seen) for v in node.values)
        if isinstance(node, ast.Starred):
            return self.safe(node.value, at, seen)
        if isinstance(node, ast.IfExp):
            return self.safe(node.body, at, seen) and self.safe(node.orelse, at, seen)
        if isinstance(node, ast.BoolOp):
            return all(self.safe(v, at, seen) for v in node.values)
        if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            return self.safe(node.elt, node.elt, seen)
        if isinstance(node, ast.Subscript):
            # an entry of a safe table (MKFS[fs]); the index picks, it is not put in the text
            return isinstance(node.value, ast.Name) and self.safe(node.value, at, seen)
        if isinstance(node, ast.Name):
            return self._safe_name(node, at, seen)
        if isinstance(node, ast.Attribute) and node.attr == "command" and isinstance(
                node.value, ast.Name) and node.value.id[:1].isupper():
            return True  # a fact class's command: every one is checked as a sink
        if isinstance(node, ast.Call):
            return self._safe_call(node, at, seen)
        return False

    def _safe_name(self, node: ast.Name, at: ast.AST, seen: frozenset) -> bool:
        if node.id in seen:
            return True  # a loop in the bindings adds nothing new
        seen = seen | {node.id}
        scope = self._scope(at)
        while True:
            parameter = self._parameter(scope, node.id)
            if parameter is not None:
                return _annotated_command(parameter.annotation)
            values = self._assignments(scope, node.id)
            if values is not None:
                return all(self.safe(v, v if not isinstance(v, ast.Starred) else at, seen)
                           for v in values)
            if isinstance(scope, ast.Module):
                return self._safe_import(node.id, seen)
            scope = self._scope(scope)

    def _safe_import(self, name: str, seen: frozenset) -> bool:
        """A name imported from a scanned module is safe where it is safe in that module."""
        for node in self.tree.body:
            if isinstance(node, ast.ImportFrom) and node.module in self.modules:
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        source = self.modules[node.module]
                        return source._safe_name(ast.Name(id=alias.name), source.tree, seen)
        return False  # a builtin or another library's name: not proven

    def _safe_call(self, node: ast.Call, at: ast.AST, seen: frozenset) -> bool:
        name = _name(node.func)
        if name == "sh":
            template = node.args[0] if node.args else None
            return isinstance(template, ast.Constant) and isinstance(template.value, str)
        if name in ("cmd", "Command") and self.path == BUILDER:
            return True
        if name == "cmd":
            return True  # every argument is quoted
        if name in ("all_of", "any_of"):
            return all(self.safe(a, at, seen) for a in node.args)
        if name in self.command_functions:
            return True  # its own returns are checked as sinks
        if name in NO_SHELL:
            return True
        if name == "command" and isinstance(node.func, ast.Attribute):
            return True  # a fact's command(): every one is checked as a sink
        if name == "StringCommand":
            return all(self.safe(a, at, seen) or (isinstance(a, ast.Call)
                                                   and _name(a.func) == "QuoteString")
                       for a in node.args)
        return False

    # -- the sinks ---------------------------------------------------------------------------
    def _qualname(self, node: ast.AST) -> str:
        names = []
        current = self.parents.get(node)
        while current is not None:
            if isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.append(current.name)
            current = self.parents.get(current)
        return ".".join(reversed(names))

    def check(self, node: ast.AST, at: ast.AST, what: str) -> None:
        site = (str(self.path.relative_to(ROOT)), self._qualname(at))
        if site in ALLOWED_SITES or self.path == BUILDER:
            return  # the builder is where quoting happens; its own tests check it
        if not self.safe(node, at):
            line = getattr(node, "lineno", getattr(at, "lineno", 0))
            self.problems.append(f"{self.path.relative_to(ROOT)}:{line}: {what}: "
                                 f"{ast.unparse(node)[:90]}")

    def scan(self, command_parameters: dict[str, list[tuple[int | None, str]]]) -> list[str]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call):
                self._scan_call(node, command_parameters)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._scan_function(node)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.Assign) and any(
                            _name(t) == "command" for t in item.targets):
                        self.check(item.value, item, "a fact's command")
        return self.problems

    def _scan_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        is_fact_command = node.name == "command" and isinstance(self.parents.get(node),
                                                                 ast.ClassDef)
        returns_command = _annotated_command(node.returns)
        is_operation = any(_name(d.func if isinstance(d, ast.Call) else d) == "operation"
                           for d in node.decorator_list)
        for sub in self._walk_scope(node):
            if isinstance(sub, ast.Return) and sub.value is not None and (
                    is_fact_command or returns_command):
                self.check(sub.value, sub, "returned as a command")
            elif is_operation and isinstance(sub, (ast.Yield, ast.YieldFrom)) and (
                    sub.value is not None):
                self.check(sub.value, sub, "yielded by an operation")

    def _scan_call(self, node: ast.Call, command_parameters) -> None:
        name = _name(node.func)
        if name == "sh":
            template = node.args[0] if node.args else None
            if not (isinstance(template, ast.Constant) and isinstance(template.value, str)):
                self.problems.append(f"{self.path.relative_to(ROOT)}:{node.lineno}: sh() "
                                     f"template is not a literal: {ast.unparse(node)[:90]}")
        if name == "Command" and self.path != BUILDER:
            self.problems.append(f"{self.path.relative_to(ROOT)}:{node.lineno}: a Command "
                                 "made outside dlws/command.py")
        for keyword in node.keywords:
            if keyword.arg in COMMAND_KEYWORDS:
                self.check(keyword.value, node, f"{keyword.arg}=")
        if name in RUNNERS or name == "run_expect":
            args = node.args[1:] if name == "run_expect" else node.args
            if args:
                first = args[0]
                if isinstance(first, (ast.List, ast.Tuple)):
                    self._check_argv(first, node)
                elif _name(node.func.value if isinstance(node.func, ast.Attribute)
                           else node.func) == "subprocess" and not any(
                               k.arg == "shell" for k in node.keywords):
                    self._check_argv_name(first, node)
                elif len(args) > 1 and isinstance(first, ast.Constant):
                    pass  # testinfra's host.run("... %s", value) quotes each value itself
                else:
                    self.check(first, node, f"{name}()")
        for index, parameter in command_parameters.get(name, []):
            given = None
            if index is not None and index < len(node.args):
                given = node.args[index]
            for keyword in node.keywords:
                if keyword.arg == parameter:
                    given = keyword.value
            if given is not None:
                self.check(given, node, f"{name}({parameter}=...)")

    def _check_argv_name(self, argv: ast.AST, at: ast.AST) -> None:
        """A subprocess argument list held in a name: each of its bindings is an argv."""
        scope = self._scope(at)
        if isinstance(argv, ast.Name):
            parameter = self._parameter(scope, argv.id)
            if parameter is not None and isinstance(parameter.annotation, ast.Subscript) and (
                    _name(parameter.annotation.value) == "list"):
                return  # an argument list run without a shell; its callers build it
            values = self._assignments(scope, argv.id) or []
            if any(isinstance(v, (ast.List, ast.Tuple)) for v in values):
                for value in values:  # a list, extended by lists: no shell reads it
                    if isinstance(value, (ast.List, ast.Tuple)):
                        self._check_argv(value, at)
                return
        self.check(argv, at, "a subprocess command")

    def _check_argv(self, argv: ast.List | ast.Tuple, at: ast.AST) -> None:
        """An argument list runs without a shell, except what follows a "-c"."""
        elements = argv.elts
        for i, element in enumerate(elements):
            if isinstance(element, ast.Constant) and element.value == "-c" and i + 1 < len(
                    elements):
                self.check(elements[i + 1], at, "a shell script given to -c")


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def scan(sources: dict[Path, str]) -> list[str]:
    """The problems in a set of source files (path: text)."""
    trees = {path: ast.parse(text) for path, text in sources.items()}
    modules: dict[str, Module] = {}
    command_functions = {f.name for tree in trees.values() for f in _functions(tree)
                         if _annotated_command(f.returns)} - BUILDERS
    command_parameters: dict[str, list[tuple[int | None, str]]] = {}
    for path, tree in trees.items():
        if path == BUILDER:
            continue
        for function in _functions(tree):
            positional = [*function.args.posonlyargs, *function.args.args]
            offset = 1 if positional and positional[0].arg in ("self", "cls") else 0
            for i, arg in enumerate(positional):
                if _annotated_command(arg.annotation):
                    command_parameters.setdefault(function.name, []).append((i - offset, arg.arg))
            for arg in function.args.kwonlyargs:
                if _annotated_command(arg.annotation):
                    command_parameters.setdefault(function.name, []).append((None, arg.arg))
    for path, tree in trees.items():
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[dotted.removesuffix(".__init__")] = Module(path, tree, command_functions, modules)
    problems: list[str] = []
    for module in modules.values():
        problems += module.scan(command_parameters)
    return problems


def _sources() -> dict[Path, str]:
    return {path: path.read_text() for folder in SCANNED
            for path in sorted((ROOT / folder).rglob("*.py"))
            if "files" not in path.relative_to(ROOT / folder).parts}


def test_every_host_command_is_built_by_the_builder():
    problems = scan(_sources())
    assert not problems, ("commands built by interpolation (use dlws.command cmd/sh):\n"
                          + "\n".join(problems))


def _scan_snippet(text: str) -> list[str]:
    return scan({ROOT / "roles" / "snippet.py": textwrap.dedent(text)})


# Each of today's interpolations (as they were on main before this change), put back: refused.
RESTORED = {
    "notebooks _tls()": '''
        def _tls(where):
            names = "DNS:localhost" + f",IP:{host.data.notebooks_address}"
            server.shell(commands=[f"openssl req -addext \\"subjectAltName={names}\\" "
                                   f"-keyout {where['key']}"])
        ''',
    "notebooks venv": '''
        def _hub(prefix):
            server.shell(name="venv", commands=[f"python3 -m venv {prefix}"])
        ''',
    "a fact's command": '''
        class SharedFolder(FactBase):
            def command(self, path):
                quoted = shlex.quote(path)
                return f"[ -d {quoted} ] || exit 0; stat -- {quoted}"
        ''',
    "an operation's yield": '''
        @operation()
        def shared_folder(path, group):
            yield "chown root:" + group + " -- " + path
        ''',
    "percent formatting": '''
        def f(host, where):
            host.run("ls %s" % where)
        ''',
    "format": '''
        def f(host, module):
            host.run("python -c 'import {}'".format(module))
        ''',
    "a join of quoted words": '''
        def f(host, parts):
            host.run(" ".join(shlex.quote(p) for p in parts))
        ''',
    "a variable made by an f-string": '''
        def f(path):
            line = f"cp -n -p {path} {path}.orig"
            server.shell(commands=[line])
        ''',
    "a template that is not a literal": '''
        def f(path, template):
            server.shell(commands=[sh(template, path)])
        ''',
    "a Command-returning helper that formats": '''
        def resolve(disk) -> Command:
            return f"dev=$(readlink -f {disk['device']})"
        ''',
    "a Command parameter given a formatted string": '''
        def with_proxy(command: Command) -> Command:
            return all_of([cmd("true"), command])
        def f(url):
            server.shell(commands=[with_proxy(f"curl {url}")])
        ''',
    "a shell script in an argument list": '''
        def f(path):
            subprocess.run(["docker", "exec", "c", "sh", "-c", f"ls {path}"])
        ''',
    "a Command made by hand": '''
        def f(path):
            server.shell(commands=[Command("ls " + path)])
        ''',
}


@pytest.mark.parametrize("case", sorted(RESTORED))
def test_restored_interpolation_is_refused(case):
    assert _scan_snippet(RESTORED[case]), f"{case}: not caught"


ALLOWED = {
    "argument list": 'server.shell(commands=[cmd("python3", "-m", "venv", "--", prefix)])',
    "literal template": 'server.shell(commands=[sh("test -L {} && exit 1", path)])',
    "literal": 'server.shell(commands=["update-ca-certificates"])',
    "testinfra's quoting": 'host.run("stat -c %a -- %s", path)',
    "joined": 'host.run(all_of([cmd("true"), sh("ls {}", p)]))',
    "subprocess argv": 'subprocess.run(["docker", "exec", name, "ls", path])',
}


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_built_commands_pass(case):
    assert _scan_snippet(f"def f(host, server, prefix, path, p, name):\n    {ALLOWED[case]}\n"
                         ) == []


# --- the builder itself: hostile values stay one word when a real shell runs the line ---------

HOSTILE = ["$(touch {marker})", "`touch {marker}`", "x; touch {marker}", "a'b\"c", "-rf",
           "fe80::1%$(touch {marker})", "line\nbreak", "*", "~root", ""]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_reaches_the_program_as_one_word(tmp_path, value):
    import subprocess

    from dlws.command import all_of, cmd, sh

    marker = tmp_path / "ran"
    value = value.format(marker=marker)
    line = all_of([cmd("true"), sh("printf '%s\\0' {} {}", value, cmd("x"))])
    out = subprocess.run(["sh", "-c", line], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(b"\0")[:2] == [value.encode(), b"x"], (line, out.stdout)
    assert not marker.exists(), f"{value!r} ran as shell code: {line}"


def test_sh_refuses_a_built_command_as_template_and_joins_only_built_commands():
    from dlws.command import all_of, cmd, sh

    with pytest.raises(TypeError):
        sh(cmd("ls"))
    with pytest.raises(TypeError):
        all_of([cmd("true"), "rm -rf /"])
    with pytest.raises(ValueError):
        cmd("echo", "a\x00b")
    # A line from sh() keeps its own operators inside braces when joined.
    joined = all_of([cmd("false"), sh("true || true # {}", "comment")])
    import subprocess

    assert subprocess.run(["sh", "-c", joined]).returncode == 1, joined
