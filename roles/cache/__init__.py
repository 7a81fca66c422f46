"""Package cache role: one apt-cacher-ng for a fleet, and the keys that point hosts at it."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.operations import files, server

from dlws.command import sh
from dlws.roles.base import _apt
from dlws.roles.cache.defaults import DEFAULTS, KEYS  # noqa: F401

ACNG_CONF = "/etc/apt-cacher-ng/zz_dlws.conf"
ACNG_PORT = 3142


class AptCacherRunning(FactBase):
    """True when apt-cacher-ng answers on its port."""

    command = sh("(exec 3<>/dev/tcp/127.0.0.1/{}) 2>/dev/null && echo yes || "
                 "(pgrep -x apt-cacher-ng >/dev/null && echo yes) || echo no", ACNG_PORT)
    shell_executable = "bash"

    def process(self, output):
        return "".join(output).strip() == "yes"


# NVIDIA's CUDA repository, served through the cache: hosts behind the cache ask for it over
# http (roles/nvidia_repo.apt_url) and apt-cacher-ng fetches it from NVIDIA over https and keeps
# it: the manual's "backend configuration method" (howtos.html, "8.2 Access to SSL/TLS remote
# repositories": "the cacher admin can add https URLs to backend lists instead of http urls.
# Data will be cached just like usual"; Remap syntax as the shipped acng.conf's Remap-secdeb).
# Its packages are signed by NVIDIA's key, which apt checks on the host (Signed-By).
CUDA_REMAP = ("Remap-dlwscuda: developer.download.nvidia.com/compute/cuda/repos ; "
              "https://developer.download.nvidia.com/compute/cuda/repos")


def acng_conf() -> str:
    # PassThroughPattern: other HTTPS repositories (CONNECT) are tunnelled, not cached;
    # apt-cacher-ng cannot read inside TLS (https://www.unix-ag.uni-kl.de/~bloch/acng/html/howtos.html).
    return (
        "# Managed by dlws (roles/cache).\n"
        f"Port: {ACNG_PORT}\n"
        "PassThroughPattern: .*\n"
        "ExThreshold: 28\n"
        f"{CUDA_REMAP}\n"
    )


@deploy("Package cache for the fleet (apt-cacher-ng)")
def serve() -> None:
    """Install and start apt-cacher-ng on this host (a lab server, or a controller container)."""
    _apt.packages(name="Install apt-cacher-ng", packages=["apt-cacher-ng", "procps"],
                  no_recommends=True, update=True, cache_time=3600,
                  _env={"DEBIAN_FRONTEND": "noninteractive"})
    conf = files.put(name="Configure apt-cacher-ng (HTTPS passes through)",
                     src=StringIO(acng_conf()), dest=ACNG_CONF, mode="644")
    running = host.get_fact(AptCacherRunning)
    if conf.will_change or not running:
        # The init script works with and without systemd (containers have none).
        server.shell(name="(Re)start apt-cacher-ng",
                     commands=["/etc/init.d/apt-cacher-ng restart"])
    else:
        host.noop("apt-cacher-ng is running with this configuration")
