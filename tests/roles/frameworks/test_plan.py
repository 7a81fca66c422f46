"""roles/frameworks at the plan level: TensorFlow per GPU, burn-in, NVML, the daily check."""

from __future__ import annotations

import pytest

from tests.plan.cases import (
    host_data,
    run_case,
)


def test_maxwell_host_gets_tensorflow_on_the_cpu():
    """TensorFlow's wheels carry sm_60/70/80/89 and compute_90 only (.bazelrc): a Tesla M40
    (sm_52) gets tensorflow-cpu, torch a cu126 build (sm_50 in its arch list), the
    proprietary modules (no GSP) and R580 at most."""
    run = run_case("ubuntu-24.04_tesla-m40", host_data("ubuntu-24.04", "tesla-m40", "auto"))
    assert run.error is None, run.error
    stack = run.stack
    assert (stack.driver.branch, stack.driver.flavour) == ("580", "proprietary")
    assert stack.tensorflow.package == "tensorflow-cpu==2.21.0"
    assert (stack.torch.version, stack.torch.variant) == ("2.14.1", "cu126")
    assert any("sm_52" in note and "tensorflow-cpu" in note for note in stack.notes)
    install = " ".join(c for op in run.named("Install the frameworks") for c in op.commands)
    assert "tensorflow-cpu==2.21.0" in install and "and-cuda" not in install, install


def test_burn_in_is_installed_with_stress_ng_in_the_essential_install():
    """stress-ng comes in base's apt run with the essential packages: no apt-get install of its
    own from the distribution's archive (4.3 s of a first deploy, measured). On a host with no
    driver to build, that run goes beside the Python environment, after the system Python's
    (tests/roles/base/test_apt_beside.py): two in all."""
    run = run_case("debian-12_no-gpu_burn-in", host_data("debian-12", "no-gpu", "distro"))
    [start] = run.named("Start installing the other essential packages")
    assert "stress-ng" in start.commands[0] and "build-essential" in start.commands[0]
    assert len(run.apt_installs()) == 2, run.describe()
    script = run.uploads()["/opt/dlws/venv/bin/dlws-burn-in"]
    assert script.startswith("#!/opt/dlws/venv/bin/python\n") and "def evaluate(" in script
    [link] = run.named("Link dlws-burn-in to /usr/local/bin/dlws-burn-in")
    assert any("/usr/local/bin/dlws-burn-in" in c for c in link.commands), run.describe()


@pytest.mark.parametrize(("gpu", "nvml"), [("no-gpu", False), ("a100", True)])
def test_nvml_bindings_go_to_gpu_hosts_only(gpu, nvml):
    from dlws.roles import all_defaults
    from dlws.stack.locks import NVML_BINDINGS, environment_spec

    data = host_data("ubuntu-24.04", gpu, "distro")
    run = run_case(f"ubuntu-24.04_{gpu}_nvml", data)
    assert run.error is None, run.error
    spec = environment_spec(run.stack, {**all_defaults(), **data})
    assert (NVML_BINDINGS in spec.requirements) is nvml, spec.requirements


def test_daily_check_timer_only_when_asked():
    off = run_case("ubuntu-24.04_t4_no-daily", host_data("ubuntu-24.04", "t4", "distro"))
    assert off.named("daily check") == [] and not any(
        "dlws-daily-check" in path for path in off.uploads()), off.describe()
    data = host_data("ubuntu-24.04", "t4", "distro", frameworks_daily_check=True,
                     frameworks_daily_burn_in_minutes=3, hardware_data_dir="/data/ml-disk")
    run = run_case("ubuntu-24.04_t4_daily", data)
    uploads = run.uploads()
    timer = uploads["/etc/systemd/system/dlws-daily-check.timer"]
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    service = uploads["/etc/systemd/system/dlws-daily-check.service"]
    assert "ExecStart=/usr/local/sbin/dlws-daily-check" in service
    script = uploads["/usr/local/sbin/dlws-daily-check"]
    assert ("/usr/local/bin/dlws-burn-in --minutes 3 --gpus 1 --data-dir /data/ml-disk "
            "--json /var/lib/dlws/daily/burn-in.json") in script, script
    assert "--require-gpu" in script
    [enable] = run.named("Enable and start the dlws-daily-check timer")
    assert "systemctl daemon-reload" in enable.commands
    assert any("systemctl enable dlws-daily-check.timer" in c for c in enable.commands), (
        enable.commands)


def test_daily_check_is_skipped_in_a_container():
    data = host_data("debian-12", "no-gpu", "distro", frameworks_daily_check=True,
                     facts={"container": "docker"})
    run = run_case("debian-12_no-gpu_daily-in-container", data)
    assert not any("dlws-daily-check" in path for path in run.uploads()), run.describe()
