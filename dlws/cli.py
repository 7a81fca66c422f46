"""dlws: deep learning workstations, planned, deployed and proven from one command.

The inventory is the first argument of every command that reaches hosts: a pyinfra inventory
file (hosts.py), an Ansible inventory (an INI/YAML/TOML file, a directory with group_vars/, a
script), @docker/NAME (a container on this machine) or @local (this machine). Runs are kept under
./reports/<inventory>/<time>/ (or --reports DIR). The order for a new lab: init, plan, lock,
deploy, reboot, verify.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dlws import __version__, paths, report
from dlws.init import write_starting_inventory
from dlws.inventory import ansible
from dlws.locks import LockError, make_lock
from dlws.progress import DeployProgress, write_log
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from dlws.stack.__main__ import add_arguments, calculate
from dlws.stack.locks import LockSpec
from dlws.validate.secrets import redact

BIN = Path(sys.executable).parent

# One table: every command's exit status (README "Exit codes" repeats it; a test keeps them equal).
EXIT_CODES = (
    (0, "done: every host deployed / every check passed / the file was written"),
    (1, "a host failed: an operation failed, a check failed, a lock could not be made"),
    (2, "usage: a bad option or argument (an inventory that does not exist, a -k that selects "
        "nothing)"),
    (3, "refused before anything changed: the inventory's data, a missing hash lock, a host "
        "that cannot be planned"),
    (4, "not confirmed: deploy without -y, answered no or not on a terminal"),
    (130, "interrupted (Ctrl-C)"),
)
OK, FAILED, USAGE, REFUSED, NOT_CONFIRMED, INTERRUPTED = (code for code, _ in EXIT_CODES)
# What dlws.plan's refusals say (bad data, a missing lock, a host that cannot be planned);
# pyinfra exits 1 with them as with any other error.
REFUSAL_MARKS = ("nothing was changed on any host", "cannot be planned")


def exit_table() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)


class Inventory:
    """What a command was given, turned into what pyinfra and verify read."""

    def __init__(self, given: str, scratch: Path):
        self.given = given
        self.env = dict(os.environ)
        if given == "@local" or given.startswith("@docker/"):
            # A one-host inventory file, so that deploy and verify read the same thing.
            self.name = given.lstrip("@").replace("/", "-")
            self.path = scratch / f"{self.name}.py"
            self.path.write_text(f"hosts = [({given!r}, {{}})]\n")
            self.file = str(self.path)
            return
        path = Path(given).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"inventory {given} does not exist (a pyinfra .py file, an "
                                    "Ansible inventory, @docker/NAME or @local; `dlws init DIR` "
                                    "writes a starting one)")
        self.path = path.resolve()
        self.name = self.path.stem if self.path.is_file() else self.path.name
        self.file = str(self.path)
        if "DLWS_LOCK_DIR" not in os.environ and not paths.in_checkout():
            # A lab's hash locks live beside its inventory (lab/locks/), whatever the cwd.
            folder = self.path.parent if self.path.is_file() else self.path
            if folder.is_relative_to(paths.examples_folder()):  # dlws's own: never write there
                folder = Path.cwd()
            os.environ["DLWS_LOCK_DIR"] = self.env["DLWS_LOCK_DIR"] = str(folder / "locks")
        self.ansible = ansible.is_ansible_source(self.path)
        if self.ansible:
            self.env[ansible.INVENTORY_ENV] = str(self.path)
            self.file = str(paths.examples_folder() / "ansible.py")

    ansible = False

    def limit(self, pattern: str | None) -> list[str]:
        """pyinfra's --limit for a pyinfra inventory; Ansible's host patterns for Ansible's."""
        if not pattern:
            return []
        if self.ansible:
            self.env[ansible.LIMIT_ENV] = pattern
            return []
        return ["--limit", pattern]


def _say(*parts: object) -> None:
    print(*parts, flush=True, file=sys.stderr)


def _pyinfra(inventory: Inventory, deploy_file: str, *extra: str) -> list[str]:
    """pyinfra with dlws's config, so the inventory is checked before any host is connected."""
    return [str(BIN / "pyinfra"), "--config", str(paths.pyinfra_config()), *extra,
            inventory.file, str(paths.deploy_file(deploy_file))]


def _refused(text: str) -> bool:
    return any(mark in text for mark in REFUSAL_MARKS)


def run_folder(reports: Path, inventory_name: str) -> Path:
    """reports/<inventory>/<time>/: every run kept, runs of one inventory side by side (what
    `dlws report --since-pass` compares)."""
    return reports / inventory_name / time.strftime("%Y%m%d-%H%M%S")


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="dlws-"))


def _inventory(args: argparse.Namespace) -> Inventory:
    return Inventory(args.inventory, _scratch())


# --- plan -----------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    inventory = _inventory(args)
    command = _pyinfra(inventory, "plan.py", "-y", *inventory.limit(args.limit))
    return _child(command, inventory.env, "plan")


def _child(command: list[str], env: dict[str, str], what: str) -> int:
    """Run pyinfra showing its output; a refusal of the inventory exits REFUSED."""
    _say("+", " ".join(command))
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        sys.stderr.write(redact(line))
        sys.stderr.flush()
    code = process.wait()
    if code and _refused("".join(seen)):
        _say(f"dlws {what}: refused before anything changed (see above)")
        return REFUSED
    return FAILED if code else OK


# --- deploy ---------------------------------------------------------------------------------


def cmd_deploy(args: argparse.Namespace) -> int:
    inventory = _inventory(args)
    run_dir = Path(args.run_dir) if args.run_dir else run_folder(args.reports, inventory.name)
    flags = [*inventory.limit(args.limit), *(["--diff"] if args.diff else [])]
    if args.dry:
        return deploy(inventory, flags + ["--dry"], run_dir, args.deploy_file)
    if not args.yes:
        if not sys.stdin.isatty():
            _say("dlws deploy: not on a terminal and no -y; nothing was changed (add -y)")
            return NOT_CONFIRMED
        code = deploy(inventory, flags + ["--dry"], run_dir / "dry", args.deploy_file)
        if code != OK:
            return code
        answer = input("dlws deploy: make these changes? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            _say("dlws deploy: nothing was changed")
            return NOT_CONFIRMED
    return deploy(inventory, flags, run_dir, args.deploy_file)


def deploy(inventory: Inventory, flags: list[str], run_dir: Path,
           deploy_file: str = "workstation.py") -> int:
    """Run the deploy with progress lines; keep deploy.json, deploy.txt and deploy.log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    command = _pyinfra(inventory, deploy_file, "-y", "-vvv", "--json", *flags)
    _say("+", " ".join(command), f"(log: {run_dir})")
    started = time.monotonic()
    with open(run_dir / "deploy.log", "w") as log:
        # pyinfra prints its progress (and, with -vvv, each command's output) on stderr and,
        # with --json, the results on stdout.
        process = subprocess.Popen(command, env=inventory.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stderr is not None
        collected: list[str] = []
        reader = _drain(process.stdout, collected)
        DeployProgress(out=sys.stderr, log=log).follow(process.stderr)
        reader.join()
        code = process.wait()
    seconds = time.monotonic() - started
    summary = write_log(run_dir, "".join(collected), inventory.given, command, code, seconds)
    print(summary.read_text(), end="", flush=True)
    if code and _refused((run_dir / "deploy.log").read_text()):
        _say("dlws deploy: refused before anything changed (see above)")
        return REFUSED
    _say(f"dlws deploy: {'failed' if code else 'done'}; log: {run_dir}")
    return FAILED if code else OK


def _drain(stream, into: list[str]):
    thread = threading.Thread(target=lambda: into.extend(stream), daemon=True)
    thread.start()
    return thread


# --- verify, burn-in, report ----------------------------------------------------------------


def verify(inventory: Inventory, extra: list[str]) -> int:
    command = [str(BIN / "pytest"), str(paths.verify_folder()), "--inventory",
               str(inventory.path), "-p", "no:cacheprovider", *extra]
    _say("+", " ".join(command))
    code = subprocess.run(command, env=inventory.env).returncode
    # pytest: 0 passed, 1 failed, 2 interrupted, 3 internal error, 4 usage, 5 nothing collected
    codes = {0: OK, 1: FAILED, 2: INTERRUPTED, 3: FAILED, 4: REFUSED, 5: USAGE}
    return codes.get(code, FAILED)


def verify_and_report(inventory: Inventory, run_dir: Path, extra: list[str]) -> int:
    """Verify into run_dir (JUnit XML + per-host facts), then print and write the report."""
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    code = verify(inventory, [f"--junitxml={run_dir / report.JUNIT}",
                              f"--facts-json={run_dir / report.FACTS}", *extra])
    _say(f"\ndlws verify: {time.monotonic() - started:.0f} s\n")
    if not (run_dir / report.JUNIT).exists():
        _say(f"dlws verify: pytest wrote no {run_dir / report.JUNIT} (see above)")
        return code or FAILED
    reported = report.main([str(run_dir)])
    return code or (FAILED if reported else OK)


def _verify_extra(args: argparse.Namespace, inventory: Inventory) -> list[str]:
    extra = ["-n", args.n] if args.n else []
    if args.limit:
        extra.append(f"--limit={args.limit}")
    if args.vault_password_file:
        extra.append(f"--vault-password-file={args.vault_password_file}")
    if args.verbose:
        # The training check's per-epoch lines come through pytest's live log.
        extra += ["-o", "log_cli=true", "--log-cli-level=INFO", "-v"]
    return extra


def cmd_verify(args: argparse.Namespace) -> int:
    inventory = _inventory(args)
    run_dir = Path(args.run_dir) if args.run_dir else run_folder(args.reports, inventory.name)
    extra = _verify_extra(args, inventory)
    if args.burn_in_minutes:
        extra.append(f"--burn-in-minutes={args.burn_in_minutes}")
    return verify_and_report(inventory, run_dir, extra + args.pytest_args)


def cmd_burn_in(args: argparse.Namespace) -> int:
    inventory = _inventory(args)
    run_dir = Path(args.run_dir) if args.run_dir else run_folder(args.reports, inventory.name)
    extra = _verify_extra(args, inventory)
    extra += [f"--burn-in-minutes={args.minutes}", "-k", "burn_in", "-o", "log_cli=true",
              "--log-cli-level=INFO"]
    return verify_and_report(inventory, run_dir, extra + args.pytest_args)


def cmd_report(args: argparse.Namespace) -> int:
    return report.handle(args, args.parser)


# --- lock -----------------------------------------------------------------------------------


def lock(inventory: Inventory, renew: bool = False, limit: str | None = None) -> int:
    """Make the hash locks the inventory's hosts install from that do not exist yet."""
    with tempfile.NamedTemporaryFile(suffix=".json") as plan:
        command = _pyinfra(inventory, "plan.py", "-y", *inventory.limit(limit))
        env = {**inventory.env, "DLWS_PLAN_JSON": plan.name, "DLWS_PLAN_JSON_SECRETS": "1"}
        code = _child(command, env, "lock")
        if code != OK:
            _say("dlws lock: the hosts could not be planned (see above)")
            return REFUSED if code == REFUSED else FAILED
        rows = json.loads(Path(plan.name).read_text())
    specs: dict[str, tuple[LockSpec, list[str]]] = {}
    for row in rows:
        for data in row["locks"]:
            spec = LockSpec.from_dict(data)
            specs.setdefault(spec.name, (spec, []))[1].append(row["host"])
    for spec, hosts in specs.values():
        state = "kept"
        if renew or not spec.path.exists():
            try:
                make_lock(spec)
            except LockError as error:
                _say(f"dlws lock: {error}")
                return FAILED
            state = "written"
        print(f"{spec.path}: {state} ({len(spec.path.read_text().split('--hash')) - 1} "
              f"hashes; {spec.summary()}; hosts: {', '.join(hosts)})", flush=True)
    return OK


def cmd_lock(args: argparse.Namespace) -> int:
    return lock(_inventory(args), renew=args.renew, limit=args.limit)


# --- stack, init, sandbox, image, test ------------------------------------------------------


def cmd_stack(args: argparse.Namespace) -> int:
    return calculate(args)


def cmd_init(args: argparse.Namespace) -> int:
    try:
        written = write_starting_inventory(Path(args.dir))
    except FileExistsError as error:
        _say(f"dlws init: {error}")
        return USAGE
    for path in written:
        print(f"wrote {path}")
    print(f"next: edit {written[0]}, then `dlws plan {written[0]}`")
    return OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    name = os.environ.setdefault("DLWS_SANDBOX", args.name)
    if args.fresh:
        remove_container(name)
    image = ensure_debian_image(args.suite)
    print(f"sandbox {name}: {ensure_container(name, image)} from {image}", flush=True)
    inventory = Inventory(str(paths.examples_folder() / "sandbox.py"), _scratch())
    run_dir = run_folder(args.reports, inventory.name)
    # The sandbox's hash locks ship with dlws; on a controller with other wheels, make them.
    if lock(inventory) != OK:
        return FAILED
    code = deploy(inventory, [], run_dir)
    if code != OK:
        _say(f"\ndlws sandbox: the deploy of {name} failed (see above)")
        return code
    code = verify_and_report(inventory, run_dir, ["-q"])
    print("dlws sandbox: every check passed" if code == 0 else
          "dlws sandbox: VERIFY FAILED (the failures above name the check and its evidence)")
    return code


def cmd_image(args: argparse.Namespace) -> int:
    for suite in args.suites:
        print(ensure_debian_image(suite, arch=args.arch))
    return OK


def cmd_test(args: argparse.Namespace) -> int:
    if not paths.in_checkout():
        _say("dlws test: runs the test suite of a git checkout of dlws (tests/ is not here)")
        return USAGE
    # The integration tests build what they need (images, containers) themselves.
    command = [str(BIN / "pytest"), "tests", *args.pytest_args]
    _say("+", " ".join(command))
    return subprocess.run(command, cwd=paths.CHECKOUT).returncode


# --- the parser -----------------------------------------------------------------------------


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped per paragraph; the exit-code table kept as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return text
        return "\n\n".join(super(_Formatter, self)._fill_text(part, width, indent)
                             for part in text.split("\n\n"))


INVENTORY_HELP = ("the hosts: a pyinfra inventory file (hosts.py), an Ansible inventory (INI, "
                  "YAML, TOML file, a directory with group_vars/, a script), @docker/NAME (a "
                  "container here) or @local (this machine)")
LIMIT_HELP = ("only these hosts: pyinfra's --limit (host names, group names, globs) for a "
              "pyinfra inventory; Ansible's host patterns ('gpu:!ws03*') for an Ansible one")


def _inventory_arguments(parser: argparse.ArgumentParser, limit: str = LIMIT_HELP) -> None:
    parser.add_argument("inventory", nargs="?", metavar="INVENTORY", help=INVENTORY_HELP)
    # The first releases took --inventory; it still works.
    parser.add_argument("--inventory", dest="inventory_option", help=argparse.SUPPRESS)
    parser.add_argument("--limit", metavar="PATTERN", help=limit)


def _reports_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reports", type=paths.reports_folder, default=None, metavar="DIR",
                        help="where runs are kept, as DIR/<inventory>/<time>/ (default: "
                             "./reports in the current directory, or $DLWS_REPORTS)")
    parser.add_argument("--run-dir", metavar="DIR",
                        help="this run's folder exactly (default: REPORTS/<inventory>/<time>)")


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", metavar="WORKERS",
                        help="check hosts in parallel with pytest-xdist (e.g. auto)")
    parser.add_argument("--vault-password-file", metavar="FILE",
                        help="the password file for an Ansible inventory's vaulted variables "
                             "(else ANSIBLE_VAULT_PASSWORD_FILE)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="one line per check, and the training check's per-epoch lines as "
                             "they come")
    # Options dlws does not know (-k EXPR, -x, --lf, -m) pass through to pytest (main()).
    parser.set_defaults(pytest_args=[])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlws", description=__doc__, epilog=exit_table(),
                                     formatter_class=_Formatter)
    parser.add_argument("--version", action="version", version=f"dlws {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, func, description: str | None = None):
        each = sub.add_parser(name, help=summary, description=description or summary,
                              epilog=exit_table(), formatter_class=_Formatter)
        each.set_defaults(func=func)
        return each

    init = command("init", "write a commented starting inventory for a lab into DIR", cmd_init,
                   "Write DIR/hosts.py (pyinfra), DIR/hosts.yml (Ansible), DIR/README.md and "
                   "DIR/group_data/; never overwrites a file.")
    init.add_argument("dir", metavar="DIR", help="the folder (made if missing)")

    plan = command("plan", "show what each host would get; connects, reads facts, changes "
                   "nothing", cmd_plan, "Plan every host (driver, CUDA, cuDNN, Python, "
                   "frameworks, locks) from its data and its facts. Nothing on any host changes.")
    _inventory_arguments(plan)

    locker = command("lock", "make the hash locks the hosts install from (./locks, or "
                     "$DLWS_LOCK_DIR)", cmd_lock, "Plan each host (facts only), then resolve "
                     "what pip/uv install there with `uv pip compile --generate-hashes`. Review "
                     "and commit the files; the deploy refuses a host whose lock is missing.")
    _inventory_arguments(locker)
    locker.add_argument("--renew", action="store_true",
                        help="resolve again and rewrite the locks that exist")

    dep = command("deploy", "make the hosts deep learning workstations (asks first)", cmd_deploy,
                  "Run the deploy on every host in parallel: per-host progress with elapsed "
                  "time, then what changed. Without -y it first shows what would change (a dry "
                  "run) and asks. The run is kept as deploy.json, deploy.txt and deploy.log.")
    _inventory_arguments(dep)
    dep.add_argument("-y", "--yes", action="store_true",
                     help="do not ask: make the changes at once (pyinfra's -y)")
    dep.add_argument("--dry", action="store_true",
                     help="show what would change on each host, change nothing (pyinfra's --dry)")
    dep.add_argument("--diff", action="store_true",
                     help="show the lines that change in each file dlws writes (pyinfra's --diff)")
    dep.add_argument("--deploy-file", default="workstation.py",
                     choices=["workstation.py", "containers.py"],
                     help="workstation.py (everything, the default) or containers.py (base and "
                          "a container engine only)")
    _reports_argument(dep)

    check = command("verify", "check every host against its inventory, then report", cmd_verify,
                    "Run the testinfra checks on every host (what each role installed, the "
                    "hardware declared, MNIST trained per framework), then print and write the "
                    "report (report.html, report.json) in the run's folder. pytest's own "
                    "options (-k EXPR, -x, --lf) pass through.")
    _inventory_arguments(check)
    _reports_argument(check)
    check.add_argument("--burn-in-minutes", type=float, default=0, metavar="N",
                       help="also run dlws-burn-in for N minutes on each host (bars: "
                            "verify_burn_in_*)")
    _verify_arguments(check)

    burn = command("burn-in", "load every host for N minutes and hold it to the burn-in bars",
                   cmd_burn_in, "Run dlws-burn-in (CPU, memory, disk, every GPU) on each host "
                   "with a line per minute (temperature, clocks, errors), then its checks.")
    _inventory_arguments(burn)
    burn.add_argument("--minutes", type=float, default=10, metavar="N",
                      help="how long (default 10)")
    _reports_argument(burn)
    _verify_arguments(burn)

    rep = command("report", "a verify run's table, JSON and HTML; what changed between runs",
                  cmd_report)
    report.add_arguments(rep)
    rep.set_defaults(parser=rep)

    stack = command("stack", "the stack a host would get, offline (no host needed)", cmd_stack,
                    "Derive a host's stack (driver, CUDA, cuDNN, frameworks) from an OS and "
                    "GPUs, with the same function the deploy and verify use.")
    add_arguments(stack)

    sandbox = command("sandbox", "provision and verify a local sandbox container (needs "
                      "Docker)", cmd_sandbox)
    sandbox.add_argument("--name", default="dlws-sandbox",
                         help="the container's name (default dlws-sandbox; $DLWS_SANDBOX)")
    sandbox.add_argument("--suite", default="bookworm", choices=["bookworm", "trixie"],
                         help="Debian 12 (bookworm, the default) or 13 (trixie)")
    sandbox.add_argument("--fresh", action="store_true", help="start from a new bare container")
    _reports_argument(sandbox)

    image = command("image", "build (or pull) bare Debian base images (needs Docker)", cmd_image)
    image.add_argument("suites", nargs="*", default=["bookworm"], metavar="SUITE",
                       help="bookworm, trixie (default bookworm)")
    image.add_argument("--arch", choices=["arm64"],
                       help="build for another CPU architecture, run under qemu-user-static")

    test = command("test", "run the test suite of a checkout (unit, then integration)", cmd_test)
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="pytest options")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # pytest's own options (-k, -x, --lf) pass through to `verify`, `burn-in` and `test`.
    args, unknown = parser.parse_known_args(argv)
    if (getattr(args, "inventory_option", None) and getattr(args, "inventory", None)
            and unknown and hasattr(args, "pytest_args")):
        # The old form `verify --inventory X -k EXPR`: the positional slot took pytest's value.
        unknown, args.inventory = [*unknown, args.inventory], None
    if unknown and hasattr(args, "pytest_args"):
        args.pytest_args = unknown + args.pytest_args
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(args, "inventory"):
        args.inventory = args.inventory or args.inventory_option
        if not args.inventory:
            parser.error(f"{args.command}: the inventory is missing (first argument)")
    if hasattr(args, "reports") and args.reports is None:
        args.reports = paths.reports_folder()
    try:
        return args.func(args)
    except FileNotFoundError as error:
        _say(f"dlws {args.command}: {error}")
        return USAGE
    except KeyboardInterrupt:
        _say(f"dlws {args.command}: interrupted")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
