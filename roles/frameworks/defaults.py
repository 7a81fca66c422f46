"""Host-data keys of the frameworks role: each with its default, type, check and doc."""

from __future__ import annotations

from dlws.validate.domains import LinkPath, Number, version
from dlws.validate.schema import Key, defaults

# A release: MAJOR.MINOR[.PATCH], ASCII digits.
VERSION = r"[0-9]{1,3}\.[0-9]{1,3}(\.[0-9]{1,3})?"

KEYS = [
    Key("frameworks_tensorflow", "auto", (str,),
        "TensorFlow version: auto = newest for the host's Python and GPU (tensorflow-cpu where "
        "no GPU, tensorflow[and-cuda] where one is); none = skip; ngc = NVIDIA's NGC TensorFlow "
        "container the host's driver runs, instead of pip (GPU hosts with containers_engine = "
        "'docker'; the way to TensorFlow on RTX 50xx)",
        check=version(("auto", "none", "ngc"), VERSION, "2.21.0")),
    Key("frameworks_torch", "auto", (str,),
        "PyTorch version: auto = newest whose CUDA build fits the GPU and driver (cpu build "
        "where no GPU); none = skip", check=version(("auto", "none"), VERSION, "2.9.1")),
    Key("frameworks_train_check_path", "/usr/local/bin/dlws-train-check", (str,),
        "where the training check command is linked for every user",
        check=LinkPath("/usr/local/bin/dlws-train-check")),
    Key("frameworks_burn_in_path", "/usr/local/bin/dlws-burn-in", (str,),
        "where the burn-in command is linked for every user",
        check=LinkPath("/usr/local/bin/dlws-burn-in")),
    Key("frameworks_daily_check", False, (bool,),
        "install a systemd timer that runs the host's checks daily (training check, short "
        "burn-in) and keeps the last results in /var/lib/dlws/daily for the next verify to "
        "collect; hosts with systemd only (skipped in containers)"),
    Key("frameworks_daily_burn_in_minutes", 5, (int, float),
        "minutes of the daily check's burn-in (at most a day)",
        check=Number(0, 1440, low_open=True, unit="minutes", integer=False)),
]
DEFAULTS = defaults(KEYS)
