"""Hosts and expectations for every check: both come from the inventory given with --inventory."""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path

import pytest

from dlws import shell_session
from dlws.facts.python import VenvPackages
from dlws.facts.readers import host_facts as read_host_facts
from dlws.facts.readers import testinfra_reader
from dlws.inventory.targets import Target
from dlws.stack import StackError, derive
from dlws.validate.secrets import redact

from . import integrity
from .helpers import start_training, targets, train

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
        found = targets(metafunc.config)
        metafunc.parametrize("target", found, ids=[t.name for t in found], scope="module")


def pytest_collection_modifyitems(items):
    for item in items:
        target = getattr(item, "callspec", None) and item.callspec.params.get("target")
        if target is not None:
            item.add_marker(pytest.mark.xdist_group(target.name))
    # The checks that read a CPU host's trainings run last (in their order), so that every
    # other check runs while the trainings do; those start at the host's first check
    # (_start_trainings_early). Measured: verify waited on the trainings in its first
    # training check, then ran the rest one after another.
    items[:] = sorted(items, key=_reads_trainings)


def _reads_trainings(item) -> bool:
    return "trained" in getattr(item, "fixturenames", ())


def pytest_sessionstart(session):
    """Read the inventory once on the controller, before anything connects: a broken one ends
    the run with its message alone (pytest's "ERROR: ..."), and the reader's notices (an Ansible
    inventory's variables dlws does not use) are shown, even under -q."""
    config = session.config
    _ONCE.clear()  # (what an earlier run in this process read is not this run's)
    integrity.reset()
    if hasattr(config, "workerinput"):
        return
    targets(config)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in config._dlws_notices:
        if reporter is not None:
            reporter.write_line(line, yellow=True)


# Properties each check records in the JUnit XML (record_property), read by dlws/report/.
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


@pytest.fixture(autouse=True)
def _start_trainings_early(request):
    """A CPU host's trainings start at its first check that reaches the host (the `plan`
    fixture starts them), not at the first check that needs the plan."""
    if "host" not in request.fixturenames or not any(
            _reads_trainings(item) for item in request.session.items):
        return
    # (An unresolvable stack fails the checks that take the plan, with its message.)
    with contextlib.suppress(pytest.fail.Exception):
        request.getfixturevalue("plan")


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
    shell_session.close_all()
    config = session.config
    collector = getattr(config, "_dlws_facts", None)
    junit = config.getoption("xmlpath", None)
    path = config.getoption("facts_json") or (junit and Path(junit).parent / "hosts.json")
    if collector is None or not path:
        return
    try:
        found = targets(config)
    except pytest.UsageError:
        return
    hosts = {t.name: {"spec": t.spec, "groups": list(t.groups), "gpu_count": t["gpu_count"],
                      "gpu_model": t["gpu_model"], "facts": collector.hosts.get(t.name, {})}
             for t in found}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({"inventory": config.getoption("inventory"),
                                      "hosts": hosts}, indent=2, default=str) + "\n")


# What a check module reads of its host once per host and run, not once per module: the
# connection's probe, the host's facts and the fact reads (each a command; over `docker exec`
# ~70 ms of CPU apiece, and verify has ~15 modules). Keyed by the target's name; an xdist
# worker keeps its own.
_ONCE: dict[tuple[str, str], object] = {}


def _once(target: Target, what: str, make):
    key = (target.name, what)
    if key not in _ONCE:
        _ONCE[key] = make()
    return _ONCE[key]


def _connect(target: Target):
    """(testinfra host, "") or (None, why it is unreachable)."""
    machine = shell_session.get_host(target.spec, **target.options)
    try:
        probe = machine.run("true")
    except Exception as error:  # the backend could not even start a command
        return None, f"{target.name} is unreachable ({target.spec}): {error}"
    if probe.rc != 0:
        return None, (f"{target.name} is unreachable ({target.spec}): rc={probe.rc} "
                      f"{probe.stderr.strip()}")
    return machine, ""


@pytest.fixture(scope="module")
def host(request, target: Target):
    """The testinfra host of a target; an unreachable host fails its own checks only. Where
    this run reads the environment's RECORD check (a check of it, or the trainings that wait
    for it), that check starts now, in the background, while the host's first checks run."""
    machine, unreachable = _once(target, "host", lambda: _connect(target))
    if unreachable:
        pytest.fail(unreachable, pytrace=False)
    if _reads_record_check(request.session):
        integrity.start_record_check(machine, target)
    return machine


def _reads_record_check(session) -> bool:
    return any({"trained", "environment_record"} & set(getattr(item, "fixturenames", ()))
               for item in session.items)


@pytest.fixture(scope="module")
def environment_record(host, target: Target) -> dict:
    """The environment's RECORD check report (verify/integrity.py), once per host and run."""
    return integrity.record_report(host, target)


@pytest.fixture(scope="module")
def host_facts(target: Target, host):
    """What the host is, read with the deploy's own fact commands and parsers (dlws.facts)."""
    return copy.deepcopy(_once(target, "facts",
                               lambda: read_host_facts(testinfra_reader(host), target.data)))


@pytest.fixture(scope="module")
def read_fact(target: Target, host):
    """`read_fact(FactClass, *args)`: a host fact through dlws.facts' own command and parser,
    the ones the deploy reads it with; each fact and arguments read once per host and run."""
    reader = testinfra_reader(host)
    read = _once(target, "reads", dict)

    def once(fact_cls, *args):
        key = (fact_cls, args)
        if key not in read:
            read[key] = reader(fact_cls, *args)
        return copy.deepcopy(read[key])

    return once


@pytest.fixture(scope="module")
def plan(request, target: Target, host, host_facts):
    """The stack this host must have: the deploy's own derivation (dlws.stack.derive) from the
    inventory's data and the host's facts."""
    try:
        stack = derive(target.data, host_facts)
    except StackError as error:
        pytest.fail(f"{target.name}: the inventory's stack cannot be resolved: {error}",
                    pytrace=False)
    # A CPU host's two trainings start now and run while its other checks do, when this run
    # has a check that reads them (one that takes the `trained` fixture).
    if any("trained" in getattr(item, "fixturenames", ()) for item in request.session.items):
        start_training(host, target, stack)
    return stack


@pytest.fixture(scope="module")
def venv_python(target: Target) -> str:
    return f"{target['python_env_prefix']}/bin/python"


@pytest.fixture(scope="module")
def venv_packages(read_fact, venv_python):
    """Distributions installed in the shared environment, by canonical name."""
    return read_fact(VenvPackages, venv_python.rsplit("/bin/", 1)[0])


@pytest.fixture(scope="module")
def trained(host, target: Target, plan):
    """`trained(framework)`: the host's training check of that framework (exit status, report,
    stderr), run once per host and framework; skipped where the inventory or plan has none."""
    return lambda framework: train(host, target, plan, framework)
