"""Host-data keys of the cudnn role: each with its default, type, check and doc."""

from __future__ import annotations

from dlws.validate.domains import version
from dlws.validate.schema import Key, defaults

KEYS = [
    Key("cudnn_version", "auto", (str,),
        "cuDNN: auto = left to the framework wheels where they bring their own, else the "
        "source's; wheels; none; or a version such as '9'",
        check=version(("auto", "wheels", "none"), r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}", "9")),
    Key("cudnn_nccl", "auto", (str,),
        "NCCL for multi-GPU hosts: auto = installed where more than one GPU is declared",
        choices=("auto", "yes", "no")),
]
DEFAULTS = defaults(KEYS)
