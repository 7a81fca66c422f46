"""Host-data keys of the frameworks role: each with its default, type, check and doc."""

from __future__ import annotations

import re

from dlws.domains import link_path
from dlws.schema import Key, defaults

_VERSION = re.compile(r"^(auto|none|\d+\.\d+(\.\d+)?)$")


def _version_or_auto(value: str) -> str | None:
    return None if _VERSION.match(value) else "use 'auto', 'none' or a version like '2.21.0'"


def _tensorflow(value: str) -> str | None:
    if value == "ngc":
        return None
    return None if _VERSION.match(value) else ("use 'auto', 'none', 'ngc' or a version like "
                                                "'2.21.0'")


KEYS = [
    Key("frameworks_tensorflow", "auto", (str,),
        "TensorFlow version: auto = newest for the host's Python and GPU (tensorflow-cpu where "
        "no GPU, tensorflow[and-cuda] where one is); none = skip; ngc = NVIDIA's NGC TensorFlow "
        "container the host's driver runs, instead of pip (GPU hosts with containers_engine = "
        "'docker'; the way to TensorFlow on RTX 50xx)", check=_tensorflow),
    Key("frameworks_torch", "auto", (str,),
        "PyTorch version: auto = newest whose CUDA build fits the GPU and driver (cpu build "
        "where no GPU); none = skip", check=_version_or_auto),
    Key("frameworks_train_check_path", "/usr/local/bin/dlws-train-check", (str,),
        "where the training check command is linked for every user", check=link_path),
]
DEFAULTS = defaults(KEYS)
