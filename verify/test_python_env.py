"""Checks of roles/python_env: the shared environment, its Python, pip/uv configuration."""

from __future__ import annotations

import pytest

from dlws.command import cmd
from dlws.facts.python import canonical
from dlws.locks import pins, unlocked_packages
from dlws.roles.python_env import PIP_CONF, PROFILE
from dlws.stack.locks import environment_spec, uv_spec

from .integrity import RECORD_CHECK, environment_problems


def test_venv_python_is_the_planned_one(host, venv_python, plan):
    """The shared environment's Python is the planned version."""
    # -I -S: the interpreter alone (no site: no .pth file's code runs here, as root).
    out = host.run(cmd(venv_python, "-I", "-S", "-c",
                       'import sys; print("%d.%d" % sys.version_info[:2])'))
    assert out.rc == 0, f"{venv_python} does not run: {out.stderr}"
    assert out.stdout.strip() == plan.python.version, (
        f"environment Python is {out.stdout.strip()}, the plan says {plan.python.version}")


def test_venv_usable_by_every_user(host, target):
    """Every user can enter the shared environment and run its python."""
    prefix = host.file(target["python_env_prefix"])
    assert prefix.is_directory, f"{prefix.path} is missing"
    assert prefix.mode & 0o005 == 0o005, (
        f"{prefix.path} mode {oct(prefix.mode)}: other users can't use it")
    assert host.file(f"{prefix.path}/bin/python").mode & 0o001, "bin/python not executable by all"


def test_pip_trusts_the_host_ca_bundle(host, target):
    """pip's system config names python_env_ca_bundle."""
    conf = host.file(PIP_CONF)
    assert conf.exists, f"{PIP_CONF} is missing"
    assert f"cert = {target['python_env_ca_bundle']}" in conf.content_string, (
        f"{PIP_CONF} names no cert = {target['python_env_ca_bundle']}")


def test_installer_present(host, target, venv_packages):
    """The planned installer (uv at its pinned version, or pip) is in the environment."""
    if target["python_env_installer"] == "uv":
        assert venv_packages.get("uv") == target["python_env_uv_version"], (
            f"uv {target['python_env_uv_version']} expected, found {venv_packages.get('uv')}")
    else:
        assert "pip" in venv_packages, "pip missing from the environment"


def test_login_shells_get_the_environment(host, target):
    """A login shell finds the shared environment's python first."""
    if not target["python_env_login_path"]:
        pytest.skip("python_env_login_path is false: login shells keep their own PATH")
    out = host.run("sh -lc 'command -v python'")
    assert out.stdout.strip() == f"{target['python_env_prefix']}/bin/python", (
        f"login shell python is {out.stdout.strip()!r}; {PROFILE} not in effect")


def test_environment_is_its_hash_lock(host, target, plan, venv_packages):
    """The environment holds exactly what its hash lock pins, and the lock on the host is the
    controller's (dlws/locks.py): nothing drifted, nothing came from elsewhere."""
    if not target["python_env_require_hashes"]:
        pytest.skip("python_env_require_hashes is False: installs are pinned by version only")
    spec = environment_spec(plan, target.data)
    assert spec.path.exists(), f"the controller has no lock {spec.path} for {spec.summary()}"
    remote = host.file(f"{target['python_env_lock_dir']}/{spec.name}")
    assert remote.exists, f"{remote.path} is missing: the deploy did not install from the lock"
    assert remote.content_string == spec.path.read_text(), (
        f"{remote.path} differs from the controller's locks/{spec.name}")
    wrong = []
    for pin in pins(spec.path):
        name, version = pin.split("==")
        found = venv_packages.get(canonical(name))
        if found != version:
            wrong.append(f"{name} {found or 'missing'} (lock: {version})")
    assert not wrong, f"the environment differs from locks/{spec.name}: " + ", ".join(wrong)
    # Nothing beside the locks: a package no lock pins was installed without a hash check.
    locks = [spec.path]
    if target["python_env_installer"] == "uv":
        locks.append(uv_spec(target.data).path)
    extra = unlocked_packages(venv_packages, [lock for lock in locks if lock.exists()])
    assert not extra, (f"installed in {target['python_env_prefix']} but pinned by no lock "
                       f"({', '.join(lock.name for lock in locks)}): {', '.join(extra)}")


def test_venv_package_inventory_recorded(venv_packages, record_fact):
    # What `dlws report --diff` compares between runs: every distribution in the environment.
    """The environment's distributions are read and recorded for the run's report."""
    assert venv_packages, "the shared environment lists no distribution (is it installed?)"
    record_fact("packages.venv", dict(sorted(venv_packages.items())))


def test_environment_files_match_their_records(host, target, record_fact, environment_record):
    """Every file each distribution's RECORD lists has its size and sha256 (verify_integrity =
    full) or its size and no later change (fast), and no importable file (.py, .pyc, .so, .pth)
    is there that no RECORD lists. Checked by the controller's own script under the
    environment's interpreter without its site-packages (-I -S -B: no .pth runs), before any
    of the environment's code runs as root (the trainings wait for it)."""
    problems = environment_problems(host, target)
    report = environment_record
    for key in ("mode", "files", "bytes_hashed", "seconds", "workers"):
        if key in report:
            record_fact(f"integrity.{key}", report[key])
    assert report.get("script_sha256") == RECORD_CHECK.sha256, report
    assert not problems, (f"{len(problems)} files of {target['python_env_prefix']} differ from "
                          f"what was installed (verify_integrity = {target['verify_integrity']}; "
                          "reinstall the named distributions from the lock): "
                          + "; ".join(problems[:40]))
    assert report["files"] > 0, f"no RECORD listed any file: {report}"
