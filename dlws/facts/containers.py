"""Facts of the container engines: Docker's daemon.json, the NVIDIA CDI specification."""

from __future__ import annotations

import json
import re

from pyinfra.api import FactBase

from dlws.command import Command, sh

DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"


CDI_SPEC = "/etc/cdi/nvidia.yaml"


class DockerDaemonJson(FactBase):
    """/etc/docker/daemon.json as data: None when missing, {"_invalid": text} when not JSON.

    .. code:: python

        {"log-driver": "json-file", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    """

    command = sh("if [ -f {} ]; then echo present; cat -- {}; fi", DOCKER_DAEMON_JSON,
                 DOCKER_DAEMON_JSON)

    def process(self, output):
        if not output or output[0].strip() != "present":
            return None
        text = "\n".join(output[1:])
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            return {"_invalid": text}
        return data if isinstance(data, dict) else {"_invalid": text}


# dockerd's own verdict on a configuration file, without starting a daemon. Docker 23+ has
# `dockerd --validate` (moby#42393). Older engines (Debian 12's docker.io 20.10) have no such
# flag, but dockerd loads and validates the file before its first side effect, and refuses a
# non-root user only after that ("return human-friendly error before creating files",
# cmd/dockerd/daemon.go): run as nobody, "needs to be started with root" means the file passed,
# "unable to configure the Docker daemon with file" means it did not. Prints one verdict line.
def dockerd_config_check(path: str = DOCKER_DAEMON_JSON) -> Command:
    """The shell command printing dockerd's verdict on a daemon.json; exits 0 only if valid."""
    return sh(
        "f={}; "
        "if ! command -v dockerd >/dev/null 2>&1; then echo 'invalid: no dockerd installed'; "
        "exit 1; fi; "
        "if dockerd --help 2>&1 | grep -q -- '--validate'; then "
        'out=$(timeout 60 dockerd --validate --config-file "$f" 2>&1); rc=$?; '
        'if [ $rc -eq 0 ]; then echo "valid (dockerd --validate): $out"; exit 0; fi; '
        'echo "invalid (dockerd --validate): $out"; exit 1; '
        "else "
        "out=$(timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups "
        'dockerd --config-file "$f" 2>&1 | tail -n 5); '
        'case "$out" in *"unable to configure the Docker daemon"*) '
        'echo "invalid (dockerd as nobody): $out"; exit 1;; '
        '*"needs to be started with root"*) '
        'echo "valid (dockerd as nobody loaded it, then refused a non-root user)"; exit 0;; '
        '*) echo "invalid (dockerd as nobody gave no verdict): $out"; exit 1;; esac; fi',
        path,
    )


DOCKERD_CONFIG_CHECK = dockerd_config_check()


def dockerd_config_verdict(stdout: str, rc: int) -> tuple[bool, str]:
    """(valid, dockerd's words) from DOCKERD_CONFIG_CHECK's output and exit code."""
    text = stdout.strip()
    return rc == 0 and text.startswith("valid"), text


class NvidiaCdiSpec(FactBase):
    """The loaded NVIDIA kernel module's version and what /etc/cdi/nvidia.yaml was made for.

    .. code:: python

        {"module": "580.95.05", "present": True, "driver": "580.95.05",
         "devices": ["0", "1", "GPU-3f1c...", "all"]}
    """

    command = sh(
        "sed -n 's/.*Kernel Module *\\([0-9.]*\\).*/module \\1/p' /proc/driver/nvidia/version "
        "2>/dev/null; if [ -f {} ]; then echo present; cat -- {}; fi", CDI_SPEC, CDI_SPEC)

    @staticmethod
    def default():
        return parse_cdi_spec([])

    def process(self, output):
        return parse_cdi_spec(output)


# `nvidia-ctk cdi generate` writes the devices as a YAML list under "devices:", each item's keys
# indented two spaces (containerEdits, then name); a device is named by its index ("0"), its UUID
# ("GPU-...") or "all". A versioned host library the spec mounts
# ("/usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05") tells the driver it was made for.
CDI_DEVICE = re.compile(r"^(?:- |  )name:\s*[\"']?([^\"'\s]+)[\"']?\s*$")


CDI_DRIVER = re.compile(r"lib(?:cuda|nvidia-ml)\.so\.(\d+\.\d+(?:\.\d+)?)")


def parse_cdi_spec(lines: list[str]) -> dict:
    """NvidiaCdiSpec's shape from the module line and the spec's text."""
    module = next((line.split()[1] for line in lines if line.startswith("module ")), None)
    stripped = [line.strip() for line in lines]
    present = "present" in stripped
    spec = lines[stripped.index("present") + 1:] if present else []
    devices, in_devices = [], False
    for line in spec:
        if line.startswith("devices:"):
            in_devices = True
            continue
        if in_devices and line[:1] not in ("", " ", "-"):
            in_devices = False  # the next top-level key
        match = CDI_DEVICE.match(line) if in_devices else None
        if match:
            devices.append(match[1])
    drivers = sorted({m[1] for line in spec for m in CDI_DRIVER.finditer(line)})
    return {"module": module, "present": present, "devices": devices,
            "driver": ", ".join(drivers) or None}


def cdi_gpu_indexes(spec: dict) -> list[str]:
    """The GPUs a parsed CDI spec names by index ("0", "1"), not counting "all" or UUIDs."""
    return [name for name in spec["devices"] if name.isdigit()]
