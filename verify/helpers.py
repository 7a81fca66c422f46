"""What verify's checks share: the inventory's targets, the training runner, small readers.

No check module imports another; each imports what it shares from here (tests/verify/
test_layout.py keeps it so), and verify/conftest.py holds only pytest's hooks and fixtures.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from dlws.command import cmd, sh
from dlws.controller_code import Script
from dlws.controller_code import parse as parse_runner
from dlws.inventory.targets import Target, load_targets
from dlws.live import run_live
from dlws.roles import all_keys

from .integrity import environment_problems

LOG = logging.getLogger("dlws.verify.training")


def targets(config) -> list[Target]:
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
    return run_script(host, TRAIN_CHECK, f"{target['python_env_prefix']}/bin/python", commands,
                      "the training check", on_line)


def run_script(host, script: Script, python: str, commands: dict[str, list[str]], what: str,
               on_line=None) -> tuple[dict[str, tuple[int, dict, str]], str]:
    """Run the controller's copy of a script that prints JSON on a host, under `python` (-I -B),
    once per entry of `commands`: {name: (exit status, JSON report, stderr)}, and what went
    wrong when nothing ran (the training check, the notebook check)."""
    command = script.command(python, commands)
    out = run_live(host, command, on_line) if on_line else host.run(command)
    document = parse_runner(out.stdout)
    if document.get("error") or not isinstance(document.get("runs"), dict):
        return {}, (f"{what} could not be started (exit {out.rc}): "
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


def integrity_refusal(host, target: Target, prefix: str | None = None,
                      removed: tuple[str, ...] = ()) -> str:
    """Why an environment's code (the shared one's, or the one's at `prefix`) must not run as
    root here ("" when its files match)."""
    problems = environment_problems(host, target, prefix, removed)
    if not problems:
        return ""
    return (f"not run: the files of {prefix or target['python_env_prefix']} differ from what was "
            f"installed (code there would run as root): {'; '.join(problems[:5])}")


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


# --- the training check ----------------------------------------------------------------------

# One training run per host and framework, shared by the checks that read its report.
_RUNS: dict[tuple[str, str], tuple[int, dict, str]] = {}


def on_gpu(target, plan, framework: str) -> bool:
    """Whether the plan puts this framework on the GPU: TensorFlow's CPU build is planned where
    its wheels have no kernel for the card (Maxwell) or torch holds the CUDA 13 wheels."""
    if target["gpu_count"] <= 0:
        return False
    if framework == "tensorflow":
        return "[and-cuda]" in (plan.tensorflow.package or "")
    return bool(plan.torch.variant and plan.torch.variant.startswith("cu"))


def train_args(target, plan, framework: str) -> list[str]:
    # --progress: a line per epoch on stderr, logged as it comes (`dlws verify -v` shows them).
    args = ["--json", "-", "--framework", framework, "--progress", *train_check_data_args(target)]
    if on_gpu(target, plan, framework):
        args += ["--require-gpu", "--all-gpus"]
    return args


def trains_side_by_side(target, plan) -> bool:
    """A CPU host that trains both frameworks, side by side in the background (start_training)."""
    return target["gpu_count"] <= 0 and len(_planned(target, plan)) > 1


def epoch_logger(name: str, frameworks: list[str]):
    """Log each per-epoch line as the host prints it (`dlws verify -v` shows them live)."""
    prefixes = tuple(f"{framework}: epoch " for framework in frameworks)

    def log(line: str) -> None:
        if line.startswith(prefixes):
            LOG.info("%s %s", name, line)

    return log


def _planned(target, plan) -> list[str]:
    return [framework for framework in ("tensorflow", "torch")
            if framework in target["verify_frameworks"] and getattr(plan, framework).version]


def _train_all(host, target, plan, frameworks: list[str]) -> None:
    """Every planned training of a CPU host in one remote call, side by side (its cores allow
    it); a GPU host trains one framework at a time, so each throughput is its own. What runs is
    the controller's copy of the training check (dlws/controller_code.py), never the host's,
    and only in an environment whose files match their RECORDs."""
    refused = integrity_refusal(host, target)
    if refused:
        for framework in frameworks:
            _RUNS[(target.name, framework)] = (2, {}, refused)
        return
    # Side by side on a CPU host (trains_side_by_side), the one-process check comes along:
    # torch imported into TensorFlow's process after it trained (one interpreter and one
    # TensorFlow import fewer beside the trainings).
    together = target["gpu_count"] <= 0 and set(frameworks) == {"tensorflow", "torch"}
    commands = {f: train_args(target, plan, f)
                + (["--also-import", "torch"] if together and f == "tensorflow" else [])
                for f in frameworks}
    runs, error = run_train_check(host, target, commands,
                                  on_line=epoch_logger(target.name, frameworks))
    for framework in frameworks:
        if framework in runs:
            rc, report, stderr = runs[framework]
            _RUNS[(target.name, framework)] = (rc, {**(report.get("results") or [{}])[0],
                                                    "script_sha256": report.get(
                                                        "script_sha256")}, stderr)
        else:
            _RUNS[(target.name, framework)] = (2, {}, error)


# Hosts whose trainings run in the background while their other checks run (CPU hosts).
_BACKGROUND: dict[str, threading.Thread] = {}


def start_training(host, target, plan) -> None:
    """Start a CPU host's trainings (side by side, one remote call) in the background, once per
    host and run, so its other checks run meanwhile; train() waits for them. A GPU host trains
    in its own checks, one framework at a time, nothing else beside it."""
    planned = _planned(target, plan)
    if not trains_side_by_side(target, plan) or target.name in _BACKGROUND:
        return

    def run() -> None:
        try:
            _train_all(host, target, plan, planned)
        except Exception as error:  # noqa: BLE001 - each training check reports it
            for framework in planned:
                _RUNS.setdefault((target.name, framework),
                                 (2, {}, f"the training runner failed: {error!r}"))

    _BACKGROUND[target.name] = threading.Thread(target=run, name=f"train {target.name}",
                                                daemon=True)
    _BACKGROUND[target.name].start()


def train(host, target, plan, framework: str) -> tuple[int, dict, str]:
    """Run dlws-train-check once per host and framework; skip where none is planned."""
    if framework not in target["verify_frameworks"]:
        pytest.skip(f"{framework} not in verify_frameworks")
    if not getattr(plan, framework).version:
        pytest.skip(f"the plan installs no {framework}: {'; '.join(plan.notes)}")
    key = (target.name, framework)
    if target.name in _BACKGROUND:
        _BACKGROUND[target.name].join()
    planned = _planned(target, plan)
    if key not in _RUNS and trains_side_by_side(target, plan):
        _train_all(host, target, plan, planned)
    if key not in _RUNS:
        _train_all(host, target, plan, [framework])
    return _RUNS[key]

APT_ROOTS = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")


def apt_source_paths(host, roots=APT_ROOTS) -> list[str]:
    """Every apt source file apt reads, symlinked ones too (apt follows links)."""
    out = host.run(sh("{} 2>/dev/null", cmd("find", "-L", *roots, "-maxdepth", "1", "-type", "f",
                                          "(", "-name", "*.list", "-o", "-name", "*.sources",
                                          ")")))
    return out.stdout.split()
