"""Controller command helpers: credentials never reach a log or report."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from dlws.validate.secrets import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"http://bob:s3cr3t@proxy.lab:3128/"', '"http://***:***@proxy.lab:3128/"'),
        ("Acquire::http::Proxy https://u:p@c:3142;", "Acquire::http::Proxy https://***:***@c:3142;"),
        ('"https://mirror.lab/pypi/simple"', '"https://mirror.lab/pypi/simple"'),
        # A user alone may be a token (https://TOKEN@host): redacted too.
        ('"ssh://admin@ws-01:22"', '"ssh://***@ws-01:22"'),
        ("https://__token__:p@ss@w0rd@pypi.lab/simple", "https://***:***@pypi.lab/simple"),
        ("https://ghp_abc123@pypi.lab/simple", "https://***@pypi.lab/simple"),
        ("https://pypi.lab/simple?token=abc123&x=1", "https://pypi.lab/simple?token=***&x=1"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", "Proxy-Authorization: Basic ***"),
        ("machine pypi.lab login bob password s3cr3t", "machine pypi.lab login bob password ***"),
    ],
    ids=["json-proxy", "apt-conf", "no-credentials", "user-only", "at-in-password", "token-only",
         "query-token", "bearer", "proxy-basic", "netrc"],
)
def test_redact_hides_passwords_in_urls(text, expected):
    assert redact(text) == expected


def test_verify_passes_pytest_options_and_keeps_runs_per_inventory(monkeypatch, tmp_path):
    from dlws import cli

    seen = {}
    monkeypatch.setattr(cli, "verify_and_report",
                        lambda inventory, run_dir, extra: seen.update(
                            inventory=inventory, run_dir=run_dir, extra=extra) or 0)
    (tmp_path / "mylab.py").write_text("hosts = []\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", "mylab.py", "--burn-in-minutes", "2", "-k", "burn_in"]) == 0
    assert seen["extra"] == ["--burn-in-minutes=2.0", "-k", "burn_in"]
    # Reports go under the current directory, or --reports DIR.
    assert seen["run_dir"].parent == tmp_path / "reports" / "mylab"
    assert seen["inventory"].path == tmp_path / "mylab.py"
    assert cli.main(["verify", "mylab.py", "--reports", "elsewhere"]) == 0
    assert seen["run_dir"].parent == tmp_path / "elsewhere" / "mylab"
    # The first releases' --inventory still works.
    assert cli.main(["verify", "--inventory", "mylab.py"]) == 0


def test_report_diff_goes_through(monkeypatch):
    """`dlws report` parses with dlws.report's own parser and hands the arguments to it."""
    from dlws import cli, report

    seen = []
    monkeypatch.setattr(report, "handle", lambda args, parser: seen.append(
        (args.run_dir, args.diff, args.since_pass, args.noise)) or 0)
    assert cli.main(["report", "--diff", "reports/x/a", "reports/x/b"]) == 0
    assert cli.main(["report", "--since-pass", "reports/x"]) == 0
    assert seen == [(None, [Path("reports/x/a"), Path("reports/x/b")], False, 0.15),
                    (Path("reports/x"), None, True, 0.15)]
    with pytest.raises(SystemExit):
        cli.main(["lock", "--inventory", "x", "-k", "y"])  # no pytest options there


def _subparsers():
    from dlws import cli

    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


EXPECTED_COMMANDS = {"init", "plan", "lock", "deploy", "verify", "burn-in", "report", "stack",
                     "sandbox", "image", "test"}


def test_every_command_and_option_is_explained(capsys):
    from dlws import cli

    commands = _subparsers()
    assert set(commands) == EXPECTED_COMMANDS
    for name, parser in commands.items():
        for action in parser._actions:
            if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
                assert action.help and len(action.help) > 8, (name, action.dest)
        with pytest.raises(SystemExit) as done:
            cli.main([name, "--help"])
        assert done.value.code == 0
        shown = capsys.readouterr().out
        assert "exit codes:" in shown and "130" in shown, name
    for name in ("plan", "lock", "deploy", "verify", "burn-in"):
        options = {o for a in commands[name]._actions for o in a.option_strings}
        assert "--limit" in options, name
    deploy_options = {o for a in commands["deploy"]._actions for o in a.option_strings}
    assert {"--dry", "--diff", "-y", "--yes"} <= deploy_options


def test_version_is_the_installed_distribution(capsys):
    from importlib.metadata import version

    from dlws import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"dlws {version('dlws')}"


def test_readme_holds_the_exit_code_table():
    from dlws import cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code, meaning in cli.EXIT_CODES:
        assert f"| {code} | {meaning} |" in readme, code


def test_init_writes_both_inventory_forms_and_they_describe_the_same_hosts(tmp_path, capsys,
                                                                         monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from dlws import cli
    from dlws.inventory.targets import load_targets
    from dlws.roles import all_keys

    # The key the starting inventory names, in a home of the test's own.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_bytes(ed25519.Ed25519PrivateKey.generate(
        ).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                        serialization.NoEncryption()))
    (tmp_path / ".ssh" / "id_ed25519").chmod(0o600)

    assert cli.main(["init", str(tmp_path / "lab")]) == 0
    lab = tmp_path / "lab"
    assert {p.name for p in lab.iterdir()} == {"hosts.py", "hosts.yml", "README.md", "group_data"}
    pyinfra_hosts = load_targets(str(lab / "hosts.py"), all_keys())
    ansible_hosts = load_targets(str(lab / "hosts.yml"), all_keys())
    for hosts in (pyinfra_hosts, ansible_hosts):
        assert [(t.name, t["gpu_count"], t["gpu_model"]) for t in hosts] == [
            ("ws-01.lab.example", 1, "NVIDIA GeForce RTX 4090")]
    assert pyinfra_hosts[0].spec == ansible_hosts[0].spec == (
        "ssh://admin@ws-01.lab.example?ssh_identity_file="
        + quote(str(Path("~/.ssh/id_ed25519").expanduser()), safe="") + "&sudo=true")
    # A second init never overwrites what the lab has edited.
    before = (lab / "hosts.py").read_text()
    assert cli.main(["init", str(lab)]) == cli.USAGE
    assert (lab / "hosts.py").read_text() == before
    assert "never overwrites" in capsys.readouterr().err


def test_a_missing_inventory_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from dlws import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["plan", "nolab.py"]) == cli.USAGE
    assert "inventory nolab.py does not exist" in capsys.readouterr().err


def test_deploy_without_yes_off_a_terminal_changes_nothing(tmp_path, monkeypatch, capsys):
    from dlws import cli

    ran = []
    monkeypatch.setattr(cli, "deploy", lambda *a, **k: ran.append(a) or 0)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert cli.main(["deploy", "@docker/i24-none", "--reports", str(tmp_path)]) == (
        cli.NOT_CONFIRMED)
    assert ran == [] and "add -y" in capsys.readouterr().err
    assert cli.main(["deploy", "@docker/i24-none", "-y", "--diff", "--limit", "x",
                     "--reports", str(tmp_path)]) == 0
    inventory, flags, run_dir = ran[0][:3]
    assert flags == ["--limit", "x", "--diff"] and run_dir.parent == tmp_path / "docker-i24-none"
    assert Path(inventory.file).read_text() == "hosts = [('@docker/i24-none', {})]\n"


def test_bad_data_is_refused_before_connecting_from_any_directory(tmp_path):
    """The pre-connect check runs from any cwd: pyinfra gets dlws's config by path.

    127.0.0.1 on a closed port: were the check skipped, pyinfra would try to connect."""
    (tmp_path / "hosts.py").write_text(
        "hosts = [('127.0.0.1', {'ssh_port': 9, 'ssh_user': 'x', '_sudo': 'no'})]\n")
    out = subprocess.run([str(Path(sys.executable).parent / "dlws"), "plan", "hosts.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 3, out.stderr[-3000:]
    assert "the inventory has 1 problem(s); nothing was changed on any host" in out.stderr
    assert "_sudo" in out.stderr
    assert "Connecting to hosts" not in out.stderr, out.stderr[-3000:]


def test_deploy_progress_condenses_output_and_beats_while_silent():
    from dlws.progress import DeployProgress, changes

    now = [0.0]
    shown = io.StringIO()
    progress = DeployProgress(out=shown, clock=lambda: now[0], heartbeat=10)
    stream = ["    [ws-1] Connected\n", "    [ws-2] Connected\n",
              "--> Starting operation: Install the frameworks \n",
              "[ws-1] >>> sh -c 'pip install ...'\n",
              "[ws-1] Collecting torch==2.13.0\n",
              "[ws-1]   Downloading torch-2.13.0.whl (190 MB)\n",
              "[ws-2] Setting up python3-venv (3.11.2-1+b1) ...\n",
              "[ws-1]  + numpy==2.4.6\n",
              '    echo "$TMPDIR";\n', 'localhost:             "Error": "",\n']
    for line in stream:
        progress.feed(line)
    now[0] = 25.0
    progress.beat()
    progress.feed("    [ws-1] Success\n")
    progress.feed("[ws-2] E: Unable to locate package nope\n")
    progress.feed("    [ws-2] Error\n")
    now[0] = 31.0
    progress.beat()  # 6 s after the last line: quiet
    lines = [line.split("] ", 1)[1] for line in shown.getvalue().splitlines()]
    assert lines == ["[ws-1] Connected", "[ws-2] Connected", "--> Install the frameworks",
                     "    [ws-1] pip: fetching torch==2.13.0",
                     "    [ws-2] apt: set up python3-venv (3.11.2-1+b1)",
                     "    [ws-1] uv: installed numpy==2.4.6",
                     "    ... Install the frameworks: 0:25 so far, waiting on ws-1, ws-2",
                     "    [ws-1] Success (0:25)",
                     "    [ws-2] | Setting up python3-venv (3.11.2-1+b1) ...",
                     "    [ws-2] | E: Unable to locate package nope",
                     "    [ws-2] Error (0:25)"]
    result = {"results": {"operations": [
        {"name": "Install apt packages", "success": ["ws-1", "ws-2"], "no_change": ["ws-2"],
         "error": []},
        {"name": "Install the frameworks", "success": ["ws-1"], "no_change": [],
         "error": ["ws-2"]}]}}
    assert changes(result) == {"ws-1": ["Install apt packages", "Install the frameworks"],
                               "ws-2": ["FAILED: Install the frameworks"]}


def _fake_checkout(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """bin/dlws in a folder of its own, with apt-get, docker and the venv's python faked: each
    call is written to calls.txt, nothing is installed or started."""
    root, fake = tmp_path / "checkout", tmp_path / "fakebin"
    (root / "bin").mkdir(parents=True)
    (root / ".venv" / "bin").mkdir(parents=True)
    fake.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "bin" / "dlws", root / "bin" / "dlws")
    for name in ("pyproject.toml", "uv.lock"):
        (root / name).write_text("")
        os.utime(root / name, (1, 1))
    calls = tmp_path / "calls.txt"
    scripts = {
        root / ".venv" / "bin" / "python": f'echo "python $*" >> {calls}; '
                                            f'echo "$PWD" > {tmp_path}/cwd.txt',
        root / ".venv" / "bin" / "dlws": "exit 0",
        fake / "apt-get": f'echo "apt-get $*" >> {calls}\n'
                          f'case "$*" in *docker.io*) touch {tmp_path}/engine;; esac',
        fake / "docker": f'echo "docker $*" >> {calls}; [ -e {tmp_path}/engine ]',
        fake / "systemctl": f'echo "systemctl $*" >> {calls}; exit 1',
    }
    for path, body in scripts.items():
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    (root / ".venv" / ".dlws-stamp").touch()
    for tool in ("dirname", "id", "env", "seq", "sleep", "touch"):
        (fake / tool).symlink_to(shutil.which(tool))
    return root, calls, {"PATH": str(fake), "HOME": str(tmp_path)}


def test_bin_dlws_runs_the_command_where_it_was_called(tmp_path):
    """Relative paths (an inventory, --reports) are the caller's, as for the installed dlws."""
    root, calls, env = _fake_checkout(tmp_path)
    lab = tmp_path / "lab"
    lab.mkdir()
    out = subprocess.run(["/bin/bash", str(root / "bin" / "dlws"), "verify", "hosts.py"], env=env,
                         cwd=lab, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cwd.txt").read_text().strip() == str(lab)


@pytest.mark.parametrize(("argv", "installed"), [
    (["stack", "--os", "debian-12"], []),
    (["verify", "lab/hosts.py"], []),
    (["report", "--help"], []),
    (["image", "trixie"], ["docker.io", "debootstrap"]),
    (["test", "-x"], ["docker.io", "debootstrap gnupg curl openssl chromium chromium-driver "
                      "e2fsprogs util-linux mount qemu-user-static"]
     + ([] if Path("/usr/share/fonts/truetype/liberation").is_dir() else ["fonts-liberation"])),
], ids=["stack", "verify", "report-help", "image", "test"])
def test_bin_dlws_installs_only_what_the_command_needs(tmp_path, argv, installed):
    root, calls, env = _fake_checkout(tmp_path)
    out = subprocess.run(["/bin/bash", str(root / "bin" / "dlws"), *argv], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = calls.read_text().splitlines()
    assert lines[-1] == f"python -m dlws.cli {' '.join(argv)}"
    installs = [line.split(" -qq --no-install-recommends ")[1] for line in lines
                if line.startswith("apt-get") and " install " in line]
    assert installs == installed
    for packages in installed:  # each apt-get install is said first, naming its packages
        assert f"dlws: installing Debian/Ubuntu packages: {packages}" in out.stderr
    if not installed:
        assert not any(line.startswith(("apt-get", "docker")) for line in lines), lines
