"""Host-data keys of the frameworks role: each with its default, type, check and doc."""

from __future__ import annotations

import re

from dlws.validate.domains import link_path
from dlws.validate.schema import Key, defaults, positive

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
    Key("frameworks_burn_in_path", "/usr/local/bin/dlws-burn-in", (str,),
        "where the burn-in command is linked for every user", check=link_path),
    Key("frameworks_daily_check", False, (bool,),
        "install a systemd timer that runs the host's checks daily (training check, short "
        "burn-in) and keeps the last results in /var/lib/dlws/daily for the next verify to "
        "collect; hosts with systemd only (skipped in containers)"),
    Key("frameworks_daily_burn_in_minutes", 5, (int, float),
        "minutes of the daily check's burn-in", check=positive),
]
DEFAULTS = defaults(KEYS)
