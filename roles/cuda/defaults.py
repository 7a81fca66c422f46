"""Host-data keys of the cuda role: each with its default, type, check and doc."""

from __future__ import annotations

from dlws.validate.domains import version
from dlws.validate.schema import Key, defaults

KEYS = [
    Key("cuda_version", "auto", (str,),
        "CUDA toolkit: auto = the newest the driver branch and GPU support from the source "
        "(none on hosts without a GPU); none; or a version such as '12.4'",
        check=version(("auto", "none"), r"[0-9]{1,2}\.[0-9]{1,2}", "12.4")),
]
DEFAULTS = defaults(KEYS)
