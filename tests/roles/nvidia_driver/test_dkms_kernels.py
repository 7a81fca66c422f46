"""Kernel updates for real: Debian 12's DKMS driver builds its module for each kernel's headers.

A Debian 12 container gets nvidia-kernel-dkms (R535, Debian's non-free) and the headers of two
kernels: DKMS builds a module for both (nothing loads it: no module can load in a container).
The headers metapackage (dlws's path, roles/base) then brings a third kernel's headers, and
DKMS builds that one too. Removing one built module makes verify fail, naming the kernel.
Heavy (three DKMS compiles of the NVIDIA module): marked slow.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from dlws.sandbox.images import ensure_debian_image
from dlws.stack import kernel
from tests.helpers import run_verify

# Three DKMS compiles of the NVIDIA module on CI's two cores do not fit the suite's ~15 min
# (605 s measured here, 2026-11-29): opt in with DLWS_DKMS_TEST=1.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("DLWS_DKMS_TEST"),
                                 reason="DKMS builds of the NVIDIA module for three kernels take "
                                        "too long for CI; run with DLWS_DKMS_TEST=1")]
CONTAINER = "dlws-i13-dkms"
# Two kernels of Debian 12's security suite, older than the one linux-headers-amd64 points to.
FIRST, SECOND = "6.1.0-55-amd64", "6.1.0-56-amd64"
SOURCES = (
    "deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware\n"
    "deb http://deb.debian.org/debian-security bookworm-security main contrib non-free "
    "non-free-firmware\n"
)
CHECK = "test_kernel_modules_built_for_each_kernel"


def sh(command: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", CONTAINER, "sh", "-c", command],
                          capture_output=True, text=True, timeout=timeout)


def built(kernel_release: str) -> str:
    out = sh(f"modinfo -k {kernel_release} -F version nvidia-current")
    return out.stdout.strip()


@pytest.fixture(scope="module")
def dkms_host(docker_engine):
    ensure_debian_image("bookworm")
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True)
    started = subprocess.run(["docker", "run", "-d", "--name", CONTAINER, "--tmpfs", "/tmp:exec",
                              "dlws/debian:bookworm", "sleep", "infinity"],
                             capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        yield
    finally:
        subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True)


def inventory(tmp_path) -> str:
    path = tmp_path / "dkms.py"
    # A container plans no driver unless one is asked for: R535 is Debian 12's.
    data = {"gpu_count": 1, "gpu_model": "Tesla T4", "nvidia_driver_source": "distro",
            "nvidia_driver_branch": "535"}
    path.write_text(f"dkms = [('@docker/{CONTAINER}', {data!r})]\n")
    return str(path)


def test_dkms_builds_the_module_for_each_kernel_and_verify_names_a_missing_one(dkms_host,
                                                                               tmp_path):
    timings = {}
    setup = sh(f"printf '{SOURCES}' > /etc/apt/sources.list && apt-get update -qq")
    assert setup.returncode == 0, setup.stderr[-3000:]
    # The driver installed with one kernel's headers, then a kernel update brings the next
    # kernel's headers: DKMS's header hook builds the module for it.
    for step, packages in (("dkms package + first kernel's headers",
                            f"nvidia-kernel-dkms linux-headers-{FIRST}"),
                           ("second kernel's headers", f"linux-headers-{SECOND}")):
        start = time.monotonic()
        out = sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                 f"--no-install-recommends {packages}", timeout=3600)
        timings[step] = time.monotonic() - start
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    status = kernel.dkms_status(sh("dkms status").stdout)
    assert {s["kernel"] for s in status if s["state"] == "installed"} >= {FIRST, SECOND}, status
    assert built(FIRST).startswith("535.") and built(SECOND).startswith("535."), status
    verify = inventory(tmp_path)
    out = run_verify(verify, "-k", CHECK)
    assert out.returncode == 0, out.stdout[-3000:]

    # The metapackage path (what roles/base installs where DKMS builds the module): the
    # newest kernel's headers come with it, and DKMS's header hook builds its module.
    headers = kernel.headers_for("debian", "12", FIRST, ["linux-image-amd64"])
    assert headers.metapackage == "linux-headers-amd64"
    start = time.monotonic()
    third = sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
               f"{headers.metapackage}", timeout=3600)
    timings["third kernel through the metapackage"] = time.monotonic() - start
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    kernels = sh("ls -1 /lib/modules").stdout.split()
    newest = [k for k in kernels if k not in (FIRST, SECOND)]
    assert len(newest) == 1, kernels
    assert built(newest[0]).startswith("535."), sh("dkms status").stdout
    print("\nDKMS timings (s): " + ", ".join(f"{k}: {v:.0f}" for k, v in timings.items()))

    # One built module gone: verify names that kernel and the fix.
    version = built(SECOND)
    removed = sh(f"dkms remove nvidia-current/{version} -k {SECOND}")
    assert removed.returncode == 0, removed.stderr
    out = run_verify(verify, "-k", CHECK)
    assert out.returncode == 1, out.stdout[-3000:]
    assert (f"kernel {SECOND} has no NVIDIA module: install its headers and build the module: "
            f"apt install linux-headers-{SECOND} && dkms autoinstall -k {SECOND}") in out.stdout, \
        out.stdout[-3000:]
