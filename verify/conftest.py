"""Hosts and expectations for every check: both come from the inventory given with --inventory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import testinfra

from dlws.command import cmd
from dlws.controller_code import Script
from dlws.controller_code import parse as parse_runner
from dlws.facts import host_facts as read_host_facts
from dlws.facts import testinfra_reader
from dlws.inventory.targets import Target, load_targets
from dlws.live import run_live
from dlws.roles import all_keys
from dlws.stack import StackError, derive
from dlws.validate import redact

DEFAULT_INVENTORY = "inventory/sandbox.py"


def pytest_addoption(parser):
    group = parser.getgroup("dlws")
    group.addoption("--inventory", default=DEFAULT_INVENTORY,
                    help="the pyinfra inventory the fleet was deployed with, or an Ansible "
                         "inventory (INI/YAML/TOML file, directory, script) "
                         f"(default: {DEFAULT_INVENTORY})")
    group.addoption("--limit", default=None,
                    help="verify (and read, and validate) only these hosts: Ansible host "
                         "patterns for an Ansible inventory (e.g. 'gpu:!ws03*'); group names or "
                         "host-name globs, comma-separated, for a pyinfra inventory")
    group.addoption("--vault-password-file", default=None,
                    help="the password file for an Ansible inventory's vaulted variables "
                         "(else ANSIBLE_VAULT_PASSWORD_FILE)")
    group.addoption("--facts-json", default=None,
                    help="where to write what each host was found to have (versions, training "
                         "throughput); default: hosts.json beside --junitxml")
    group.addoption("--burn-in-minutes", type=float, default=0,
                    help="run dlws-burn-in for N minutes on each host and hold it to the "
                         "verify_burn_in_* bars (default 0: no burn-in)")


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        targets = _targets(metafunc.config)
        metafunc.parametrize("target", targets, ids=[t.name for t in targets], scope="module")


def pytest_collection_modifyitems(items):
    for item in items:
        target = getattr(item, "callspec", None) and item.callspec.params.get("target")
        if target is not None:
            item.add_marker(pytest.mark.xdist_group(target.name))


def _targets(config) -> list[Target]:
    if not hasattr(config, "_dlws_targets"):
        try:
            config._dlws_notices = []
            config._dlws_targets = load_targets(
                config.getoption("inventory"), all_keys(), limit=config.getoption("limit"),
                vault_password_file=config.getoption("vault_password_file"),
                notices=config._dlws_notices)
        except (FileNotFoundError, ValueError) as error:
            raise pytest.UsageError(str(error)) from None
    return config._dlws_targets


def pytest_sessionstart(session):
    """Read the inventory once on the controller, before anything connects: a broken one ends
    the run with its message alone (pytest's "ERROR: ..."), and the reader's notices (an Ansible
    inventory's variables dlws does not use) are shown, even under -q."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    _targets(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in config._dlws_notices:
        if reporter is not None:
            reporter.write_line(line, yellow=True)


# Properties each check records in the JUnit XML (record_property), read by dlws/report.py.
HOST_PROPERTY = "dlws.host"
CHECK_PROPERTY = "dlws.check"
FACT_PREFIX = "dlws.fact."


# (user_properties directly, not record_property: the JUnit writer keeps them in every family,
# and record_property would warn once per test under the default xunit2.)
@pytest.fixture(autouse=True)
def _name_host_and_check(request):
    """Record which host and which check each test is, so a report needs no test-ID parsing."""
    if "target" not in request.fixturenames:
        return
    props = request.node.user_properties
    host_name = request.getfixturevalue("target").name
    props.append((HOST_PROPERTY, host_name))
    # The test's ID less the host's part: "test_gpu_health[pcie_link]".
    params = request.node.callspec.id.replace(host_name, "", 1).strip("-")
    name = request.node.originalname
    props.append((CHECK_PROPERTY, f"{name}[{params}]" if params else name))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Every check's failure text redacted before pytest prints it or writes it to JUnit."""
    outcome = yield
    report = outcome.get_result()
    if report.longrepr is not None:
        text = str(report.longrepr)
        if redact(text) != text:
            report.longrepr = redact(text)
    report.sections = [(title, redact_text(body)) for title, body in report.sections]


def redact_text(text: str) -> str:
    return redact(text)


@pytest.fixture
def record_fact(request):
    """Record what a host was found to have (a version, a throughput) for the run's report."""

    def record(key: str, value) -> None:
        request.node.user_properties.append((FACT_PREFIX + key, value))

    return record


class _FactCollector:
    """Gathers recorded facts on the controller (xdist workers ship them in their reports)."""

    def __init__(self):
        self.hosts: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        name = props.get(HOST_PROPERTY)
        if name is None:
            return
        facts = self.hosts.setdefault(name, {})
        facts.update({k[len(FACT_PREFIX):]: v for k, v in props.items()
                      if k.startswith(FACT_PREFIX)})


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # With -n, one worker per host: a host's checks share its connection and module fixtures,
    # and hosts run side by side (xdist's default "load" scatters a host over every worker).
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadgroup"
    if not hasattr(config, "workerinput"):  # the controller, or a run without xdist
        config._dlws_facts = _FactCollector()
        config.pluginmanager.register(config._dlws_facts, "dlws-facts")


def pytest_sessionfinish(session):
    config = session.config
    collector = getattr(config, "_dlws_facts", None)
    junit = config.getoption("xmlpath", None)
    path = config.getoption("facts_json") or (junit and Path(junit).parent / "hosts.json")
    if collector is None or not path:
        return
    try:
        targets = _targets(config)
    except pytest.UsageError:
        return
    hosts = {t.name: {"spec": t.spec, "groups": list(t.groups), "gpu_count": t["gpu_count"],
                      "gpu_model": t["gpu_model"], "facts": collector.hosts.get(t.name, {})}
             for t in targets}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"inventory": config.getoption("inventory"),
                                      "hosts": hosts}, indent=2, default=str) + "\n")


@pytest.fixture(scope="module")
def host(target: Target):
    """The testinfra host of a target; an unreachable host fails its own checks only."""
    machine = testinfra.get_host(target.spec)
    try:
        probe = machine.run("true")
    except Exception as error:  # the backend could not even start a command
        pytest.fail(f"{target.name} is unreachable ({target.spec}): {error}", pytrace=False)
    if probe.rc != 0:
        pytest.fail(f"{target.name} is unreachable ({target.spec}): rc={probe.rc} "
                    f"{probe.stderr.strip()}", pytrace=False)
    return machine


@pytest.fixture(scope="module")
def host_facts(target: Target, host):
    """What the host is, read with the deploy's own fact commands and parsers (dlws.facts)."""
    return read_host_facts(testinfra_reader(host), target.data)


@pytest.fixture(scope="module")
def plan(request, target: Target, host, host_facts):
    """The stack this host must have: the deploy's own derivation (dlws.stack.derive) from the
    inventory's data and the host's facts."""
    try:
        stack = derive(target.data, host_facts)
    except StackError as error:
        pytest.fail(f"{target.name}: the inventory's stack cannot be resolved: {error}",
                    pytrace=False)
    # A CPU host's two trainings start now and run while its other checks do (when this run
    # has checks that read them).
    from .test_training import start_training

    if any(getattr(item, "module", None) is not None
           and item.module.__name__.rsplit(".", 1)[-1] in ("test_training", "test_frameworks")
           for item in request.session.items):
        start_training(host, target, stack)
    return stack


@pytest.fixture(scope="module")
def venv_python(target: Target) -> str:
    return f"{target['python_env_prefix']}/bin/python"


@pytest.fixture(scope="module")
def venv_packages(host, venv_python):
    """Distributions installed in the shared environment, by canonical name."""
    from dlws.facts import VenvPackages

    out = host.run(VenvPackages().command(venv_python.rsplit("/bin/", 1)[0]))
    return VenvPackages().process(out.stdout.splitlines())


def run_json(host, command: list[str], on_line=None) -> tuple[int, dict, str]:
    """Run a command that prints JSON on stdout; return rc, the document and stderr. With
    `on_line`, each stderr line is handed to it as the host prints it (dlws.live)."""
    line = cmd(*command)
    out = run_live(host, line, on_line) if on_line else host.run(line)
    try:
        document = json.loads(out.stdout) if out.stdout.strip() else {}
    except json.JSONDecodeError:
        document = {}
    return out.rc, document, out.stderr + ("" if document else out.stdout)


# The training check as the controller holds it: what verify runs on every host.
TRAIN_CHECK = Script.from_path(Path(__file__).resolve().parent.parent / "roles" / "frameworks"
                               / "files" / "dlws_train_check.py")


def run_train_check(host, target: Target, commands: dict[str, list[str]], on_line=None,
                    ) -> tuple[dict[str, tuple[int, dict, str]], str]:
    """Run the controller's training check on a host with the environment's Python (-I -B),
    once per entry of `commands` (name -> arguments), side by side where the host has two
    CPUs: {name: (exit status, JSON report, stderr)}, and what went wrong when nothing ran.
    With `on_line`, each stderr line (the per-epoch lines) is handed to it as it comes."""
    command = TRAIN_CHECK.command(f"{target['python_env_prefix']}/bin/python", commands)
    out = run_live(host, command, on_line) if on_line else host.run(command)
    document = parse_runner(out.stdout)
    if document.get("error") or not isinstance(document.get("runs"), dict):
        return {}, (f"the training check could not be started (exit {out.rc}): "
                    f"{document.get('error', '')} {out.stderr[-1500:]}{out.stdout[-500:]}")
    runs = {}
    for name, (rc, stdout, stderr) in document["runs"].items():
        try:
            report = json.loads(stdout) if stdout.strip() else {}
        except json.JSONDecodeError:
            report = {}
        runs[name] = (rc, report if isinstance(report, dict) else {},
                      stderr + ("" if report else stdout))
    return runs, ""


def integrity_refusal(host, target: Target) -> str:
    """Why the environment's code must not run as root here ("" when its files match)."""
    from .integrity import environment_problems

    problems = environment_problems(host, target)
    if not problems:
        return ""
    return ("not run: the environment's files differ from what was installed (code there would "
            f"run as root): {'; '.join(problems[:5])}")


def train_check_data_args(target: Target) -> list[str]:
    """dlws-train-check's epochs, accuracy bars and MNIST source, as the inventory declares them
    (one place for the training check, the notebook run and the multi-node run)."""
    args = ["--epochs", str(target["verify_epochs"]),
            "--min-accuracy", str(target["verify_min_accuracy"]),
            "--sample-min-accuracy", str(target["verify_sample_min_accuracy"])]
    if target["verify_mnist_path"]:
        args += ["--mnist", target["verify_mnist_path"]]
    if target["verify_offline"]:
        args.append("--offline")
    return args


def require_gpus(target: Target) -> None:
    """Skip, with the reason, only where the inventory declares no GPU."""
    if target["gpu_count"] == 0:
        pytest.skip(f"{target.name} is declared without GPUs (gpu_count = 0)")
