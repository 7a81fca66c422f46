"""Host-data keys of the containers role: each with its default, type, check and doc."""

from __future__ import annotations

import json
import re

from dlws.domains import all_of, each, number_range, unique, user_name
from dlws.schema import Key, defaults

# An image reference: [registry[:port]/]path[:tag][@sha256:digest] (distribution/reference).
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._:/-]*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$")
# nvidia-container-toolkit's Debian package versions: "1.18.0-1".
_TOOLKIT_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:~rc\.\d+)?-\d+$")


def _daemon_json(value: dict) -> str | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        return f"must be JSON data (strings, numbers, booleans, lists, dicts): {error}"
    if "runtimes" in value and "nvidia" in value["runtimes"]:
        return ("leave the nvidia runtime out: `nvidia-ctk runtime configure` adds it on GPU "
                "hosts")
    return None


def _image(value: str) -> str | None:
    return None if _IMAGE.match(value) else (f"{value!r} is not an image reference like "
                                             "'ubuntu:24.04' or 'registry.lab/cuda:12.8'")


def _toolkit_version(value: str) -> str | None:
    return None if _TOOLKIT_VERSION.match(value) else (
        f"{value!r} is not a toolkit package version like '1.18.0-1'")


KEYS = [
    Key("containers_engine", "none", (str,),
        "container engine: none = no engine; docker = Docker (the docker group is "
        "root-equivalent); podman = the distribution's Podman, rootless for every "
        "base_lab_users member (own subordinate uid/gid ranges, no root-equivalent group); "
        "both = Docker and rootless Podman. Where a GPU is declared on a machine of its own, "
        "NVIDIA's container toolkit too", choices=("none", "docker", "podman", "both")),
    Key("containers_gpu_mode", "cdi", (str,),
        "how GPUs reach containers (GPU hosts): cdi = the CDI spec /etc/cdi/nvidia.yaml, kept "
        "current by nvidia-cdi-refresh (Podman always; Docker where its version has CDI, else "
        "Docker stays on the nvidia runtime with /dev/char links); legacy = Docker's nvidia "
        "runtime hook, with /dev/char links for every NVIDIA device node and the udev rule that "
        "keeps them (so a systemctl daemon-reload leaves running containers their GPUs)",
        choices=("cdi", "legacy")),
    Key("containers_subid_count", 65536, (int,),
        "subordinate uids and gids each lab user gets for rootless Podman (podman/both): one "
        "free range in /etc/subuid and /etc/subgid, never overlapping another; existing ranges "
        "are kept (65536 = a full 16-bit id space, as useradd gives)",
        check=number_range(65536, 16_777_216)),
    Key("containers_engine_source", "distro", (str,),
        "where Docker comes from: distro = the distribution's docker.io; docker_repo = Docker's "
        "repository (docker-ce, key fingerprint checked)", choices=("distro", "docker_repo")),
    Key("containers_daemon_json", {"log-driver": "json-file",
                                   "log-opts": {"max-size": "100m", "max-file": "3"}}, (dict,),
        "/etc/docker/daemon.json (the original kept as daemon.json.dlws-orig); on GPU hosts "
        "nvidia-ctk adds the nvidia runtime to it", check=_daemon_json),
    Key("containers_docker_users", [], (list,),
        "users put in the docker group; the group is root-equivalent (anyone in it can mount / "
        "into a container), and verify fails any other member",
        check=all_of(each(user_name), unique)),
    Key("containers_toolkit_version", "1.18.0-1", (str,),
        "NVIDIA container toolkit packages installed on GPU hosts (NVIDIA's install guide pins "
        "all four to one version)", check=_toolkit_version),
    Key("containers_gpu_check_image", "ubuntu:24.04", (str,),
        "image verify runs with --gpus all to list the GPUs (nvidia-smi comes from the host "
        "through the toolkit)", check=_image),
    Key("containers_rootless_check_image", "docker.io/library/ubuntu:24.04", (str,),
        "image verify runs rootless as each lab user (podman/both): it must hold sh and cat; "
        "fully qualified, as Podman resolves no short names without a registries.conf "
        "search list", check=_image),
]
DEFAULTS = defaults(KEYS)
