"""dlws's controller commands: `sandbox`, `lock`, `verify` (+ report), `report`, `test`, `image`."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from dlws.docker_env import ensure_container, remove_container
from dlws.drift import NOISE
from dlws.images import ensure_debian_image
from dlws.validate.secrets import redact

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(command: list[str], **kwargs) -> int:
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT, **kwargs).returncode


def deploy(inventory: str, record: Path | None = None) -> int:
    """Run the deploy; with `record`, keep pyinfra's JSON of what changed on each host there."""
    command = [str(BIN / "pyinfra"), "-y", inventory, "deploy/workstation.py"]
    if record is None:
        return _run(command)
    print("+", " ".join(command), "--json >", record, flush=True)
    # pyinfra prints its progress on stderr and, with --json, the results on stdout.
    out = subprocess.run([*command, "--json"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    record.write_text(redact(out.stdout))
    return out.returncode


def verify(inventory: str, extra: list[str] | None = None) -> int:
    return _run([str(BIN / "pytest"), "verify", "--inventory", inventory, "-p", "no:cacheprovider",
                 *(extra or [])])


def verify_and_report(inventory: str, run_dir: Path, extra: list[str]) -> int:
    """Verify into run_dir (JUnit XML + per-host facts), then print and write the report."""
    from dlws import report

    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    code = verify(inventory, [f"--junitxml={run_dir / report.JUNIT}",
                              f"--facts-json={run_dir / report.FACTS}", *extra])
    print(f"\ndlws verify: {time.monotonic() - started:.0f} s (pytest exit {code})\n")
    if not (run_dir / report.JUNIT).exists():
        print(f"dlws verify: pytest wrote no {run_dir / report.JUNIT} (see above)",
              file=sys.stderr)
        return code or 1
    return report.main([str(run_dir)])


def pyinfra_inventory(inventory: str) -> tuple[str, dict[str, str]]:
    """The pyinfra inventory file and environment for `inventory`: an Ansible inventory (a
    hosts file, a directory, a script) goes through inventory/ansible.py."""
    from dlws.inventory import ansible

    if Path(inventory).exists() and ansible.is_ansible_source(inventory):
        return "inventory/ansible.py", {**os.environ,
                                        ansible.INVENTORY_ENV: str(Path(inventory).resolve())}
    return inventory, dict(os.environ)


def lock(inventory: str, renew: bool = False) -> int:
    """Make the hash locks (locks/) the inventory's hosts install from that do not exist yet."""
    import json
    import tempfile

    from dlws.locks import LockError, LockSpec, make_lock

    with tempfile.NamedTemporaryFile(suffix=".json") as plan:
        inventory, env = pyinfra_inventory(inventory)
        command = [str(BIN / "pyinfra"), "-y", inventory, "deploy/plan.py"]
        env = {**env, "DLWS_PLAN_JSON": plan.name, "DLWS_PLAN_JSON_SECRETS": "1"}
        if _run(command, env=env) != 0:
            print("dlws lock: the hosts could not be planned (see above)", file=sys.stderr)
            return 1
        rows = json.loads(Path(plan.name).read_text())
    specs = {}
    for row in rows:
        for data in row["locks"]:
            spec = LockSpec.from_dict(data)
            specs.setdefault(spec.name, (spec, []))[1].append(row["host"])
    for name, (spec, hosts) in specs.items():
        state = "kept"
        if renew or not spec.path.exists():
            try:
                make_lock(spec)
            except LockError as error:
                print(f"dlws lock: {error}", file=sys.stderr)
                return 1
            state = "written"
        print(f"locks/{name}: {state} ({len(spec.path.read_text().split('--hash')) - 1} "
              f"hashes; {spec.summary()}; hosts: {', '.join(hosts)})", flush=True)
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    return lock(args.inventory, renew=args.renew)


def cmd_sandbox(args: argparse.Namespace) -> int:
    name = os.environ.setdefault("DLWS_SANDBOX", args.name)
    if args.fresh:
        remove_container(name)
    image = ensure_debian_image(args.suite)
    print(f"sandbox {name}: {ensure_container(name, image)} from {image}", flush=True)
    run_dir = run_folder("inventory/sandbox.py")
    run_dir.mkdir(parents=True, exist_ok=True)
    # The sandbox's hash locks ship in locks/; on a controller with other wheels, make them.
    if lock("inventory/sandbox.py") != 0:
        return 1
    started = time.monotonic()
    if deploy("inventory/sandbox.py", record=run_dir / "deploy.json") != 0:
        print(f"\ndlws sandbox: the deploy of {name} failed (see above)", file=sys.stderr)
        return 1
    print(f"\ndlws sandbox: deployed in {time.monotonic() - started:.0f} s; what changed: "
          f"{run_dir / 'deploy.json'}\n", flush=True)
    code = verify_and_report("inventory/sandbox.py", run_dir, ["-q"])
    print("dlws sandbox: every check passed" if code == 0 else
          "dlws sandbox: VERIFY FAILED (the failures above name the check and its evidence)")
    return code


def cmd_test(args: argparse.Namespace) -> int:
    # The integration tests build what they need (images, containers) themselves.
    return _run([str(BIN / "pytest"), "tests", *args.pytest_args])


def run_folder(inventory: str) -> Path:
    """reports/<inventory>/<time>/: every run kept, runs of one inventory side by side (what
    `dlws report --since-pass` compares)."""
    return ROOT / "reports" / Path(inventory).stem / time.strftime("%Y%m%d-%H%M%S")


def cmd_verify(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir or run_folder(args.inventory))
    extra = ((["-n", args.n] if args.n else [])
             + ([f"--limit={args.limit}"] if args.limit else [])
             + ([f"--vault-password-file={args.vault_password_file}"]
                if args.vault_password_file else []))
    if args.burn_in_minutes:
        extra += [f"--burn-in-minutes={args.burn_in_minutes}"]
    return verify_and_report(args.inventory, run_dir, extra + args.pytest_args)


def cmd_report(args: argparse.Namespace) -> int:
    from dlws import report

    argv = [str(args.run_dir)] if args.run_dir else []
    argv += ["--junit", str(args.junit)] if args.junit else []
    argv += ["--diff", *map(str, args.diff)] if args.diff else []
    argv += ["--since-pass"] if args.since_pass else []
    return report.main(argv + ["--noise", str(args.noise)])


def cmd_image(args: argparse.Namespace) -> int:
    for suite in args.suites:
        print(ensure_debian_image(suite, arch=args.arch))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlws", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sandbox = sub.add_parser("sandbox", help="provision and verify a local sandbox container")
    sandbox.add_argument("--name", default="dlws-sandbox")
    sandbox.add_argument("--suite", default="bookworm", choices=["bookworm", "trixie"])
    sandbox.add_argument("--fresh", action="store_true", help="start from a new bare container")
    sandbox.set_defaults(func=cmd_sandbox)
    test = sub.add_parser("test", help="run the test suite (unit, then integration)")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    test.set_defaults(func=cmd_test)
    check = sub.add_parser("verify", help="verify an inventory's hosts, then report")
    check.add_argument("--inventory", required=True,
                       help="pyinfra inventory file, or an Ansible inventory (INI/YAML/TOML "
                            "file, directory with group_vars/, script)")
    check.add_argument("--limit", help="the hosts to verify (only they are read and validated): "
                                       "Ansible host patterns for an Ansible inventory, e.g. "
                                       "'gpu:!ws03*'; group names or host-name globs, "
                                       "comma-separated, for a pyinfra inventory")
    check.add_argument("--vault-password-file", help="for an Ansible inventory's vaulted "
                                                     "variables (else ANSIBLE_VAULT_PASSWORD_FILE)")
    check.add_argument("-n", help="pytest-xdist workers, e.g. auto (hosts checked in parallel)")
    check.add_argument("--run-dir", help="where the run's files go (default: "
                       "reports/<inventory>/<time>)")
    check.add_argument("--burn-in-minutes", type=float, default=0,
                       help="also run dlws-burn-in for N minutes on each host (bars: "
                            "verify_burn_in_*)")
    check.add_argument("pytest_args", nargs=argparse.REMAINDER, help="more pytest arguments")
    check.set_defaults(func=cmd_verify)
    rep = sub.add_parser("report", help="table, JSON and HTML of a verify run's JUnit XML; "
                         "what changed between runs")
    rep.add_argument("run_dir", type=Path, nargs="?")
    rep.add_argument("--junit", type=Path, help="a JUnit XML to copy into RUN_DIR first")
    rep.add_argument("--diff", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
                     help="what changed on each host from RUN_A to RUN_B")
    rep.add_argument("--since-pass", action="store_true",
                     help="what changed on each host of RUN_DIR (or the latest run in "
                          "reports/<inventory>) since that host's last passing run")
    rep.add_argument("--noise", type=float, default=NOISE,
                     help="share a throughput must move by to count as changed")
    rep.set_defaults(func=cmd_report)
    locker = sub.add_parser("lock", help="make the hash locks (locks/) an inventory's hosts "
                            "install from")
    locker.add_argument("--inventory", required=True,
                        help="pyinfra inventory file, or an Ansible inventory")
    locker.add_argument("--renew", action="store_true",
                        help="resolve again and rewrite the locks that exist")
    locker.set_defaults(func=cmd_lock)
    image = sub.add_parser("image", help="build or pull the bare Debian base images")
    image.add_argument("suites", nargs="*", default=["bookworm"])
    image.add_argument("--arch", choices=["arm64"],
                       help="build for another CPU architecture, run under qemu-user-static")
    image.set_defaults(func=cmd_image)
    # pytest's own options (-k, -x, --lf) pass through to `verify` and `test`.
    args, unknown = parser.parse_known_args(argv)
    if unknown and hasattr(args, "pytest_args"):
        args.pytest_args = unknown + args.pytest_args
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
