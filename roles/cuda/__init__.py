"""CUDA toolkit role: the planned toolkit from the distro or NVIDIA's repository, nvcc on PATH."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server

from dlws.plan import host_plan
from dlws.roles import nvidia_repo
from dlws.roles.base import _apt
from dlws.roles.cuda.defaults import DEFAULTS, KEYS  # noqa: F401

PROFILE = "/etc/profile.d/dlws-cuda.sh"
LDCONF = "/etc/ld.so.conf.d/dlws-cuda.conf"


@deploy("CUDA toolkit", data_defaults=DEFAULTS)
def install() -> None:
    plan = host_plan()
    cuda = plan.cuda
    if not cuda.version:
        host.noop("no CUDA toolkit planned (frameworks bring their own runtime, or "
                  "cuda_version = 'none')")
        return
    if cuda.source == "cuda_repo":
        nvidia_repo.configure(plan)
    _apt.packages(
        name=f"Install the CUDA toolkit {cuda.version} ({cuda.source})",
        packages=list(cuda.packages),
        no_recommends=True,
        _env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    if cuda.source != "cuda_repo":
        return
    home = cuda.home
    # /usr/local/cuda points at the planned toolkit; other versions stay installed beside it.
    files.link(name=f"Point /usr/local/cuda at {home}", path="/usr/local/cuda", target=home)
    files.put(
        name="Put nvcc on login shells' PATH",
        src=StringIO('# Managed by dlws (roles/cuda).\ncase ":$PATH:" in *":/usr/local/cuda/bin:"*)'
                     ' ;; *) PATH="/usr/local/cuda/bin:$PATH" ;; esac\nexport PATH\n'),
        dest=PROFILE,
        mode="644",
        create_remote_dir=False,
    )
    ld = files.put(name="Add the CUDA libraries to the linker path",
                   src=StringIO("/usr/local/cuda/lib64\n"), dest=LDCONF, mode="644",
                   create_remote_dir=False)
    server.shell(name="Refresh the linker cache", commands=["ldconfig"], _if=ld.did_change)
