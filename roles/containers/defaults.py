"""Host-data keys of the containers role: each with its default, type, check and doc."""

from __future__ import annotations

from dlws.stack.services import ENGINE_SOURCES, ENGINES, GPU_MODES, KEY_DEFAULTS
from dlws.validate.domains import (
    HOST_NAME,
    Address,
    Choice,
    Flag,
    HostPath,
    ListOf,
    Mapping_,
    Name,
    Number,
    Record,
    Url,
    json_data,
    user_name,
)
from dlws.validate.schema import Key, defaults

# An image reference: [registry[:port]/]path[:tag][@sha256:digest] (distribution/reference's
# grammar, ASCII classes only).
IMAGE = (r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*"
         r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?")
# nvidia-container-toolkit's Debian package versions: "1.18.0-1".
TOOLKIT_VERSION = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(~rc\.[0-9]{1,3})?-[0-9]{1,3}"
NVIDIA_RUNTIME = "nvidia"

_IMAGE_REF = Name(IMAGE, "an image reference like 'ubuntu:24.04' or 'registry.lab/cuda:12.8'",
                  example="ubuntu:24.04", max_len=255)


def _no_nvidia_runtime(name: str) -> str | None:
    if name.lower() == NVIDIA_RUNTIME:
        return (f"{name!r} is the nvidia runtime (in any case): leave it out, `nvidia-ctk "
                "runtime configure` adds it on GPU hosts")
    return None


def _tls_for_tcp(daemon: dict) -> str | None:
    """dockerd's API on a TCP socket only with TLS and client certificates (else anyone who
    reaches the port is root on the host)."""
    tcp = [h for h in daemon.get("hosts", []) if not h.startswith(("unix://", "fd://"))]
    if tcp and not (daemon.get("tlsverify") is True and all(
            daemon.get(k) for k in ("tlscacert", "tlscert", "tlskey"))):
        return (f"hosts: {tcp[0]!r} serves Docker's API over TCP, which without TLS is root for "
                "anyone who reaches it; use unix:///run/docker.sock, or set tlsverify = true "
                "with tlscacert, tlscert and tlskey")
    return None


def _not_everything(value: str) -> str | None:
    if value.split(":")[0] in ("0.0.0.0", "::", "*"):
        return f"{value!r} would trust every registry without TLS; name the registry"
    return None


_SIZE = Name(r"[1-9][0-9]{0,5}[kmg]?", "a size like '100m'", example="100m")
_CIDR = Name(r"[0-9a-fA-F.:]{2,39}/[0-9]{1,3}", "a network like '172.30.0.1/16'",
             example="172.30.0.1/16")
# Where dockerd reads TLS files and runtimes: folders only root writes (world-writable and
# system folders refused, /etc/docker and the packaged binaries' folders named).
_TLS_FILE = HostPath(under=("/etc/docker",), example="/etc/docker/tls/cert.pem")
# dockerd's daemon.json (https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file):
# the keys dlws writes, each with its domain. Proxies come from the base role's proxy keys, so
# their credentials stay in root-only files.
DAEMON_JSON = Record({
    "log-driver": Choice("json-file", "local", "journald", "syslog", "none"),
    "log-opts": Record({"max-size": _SIZE, "max-file": Name(r"[1-9][0-9]{0,2}", "a count like "
                                                            "'3'", example="3"),
                        "compress": Choice("true", "false"),
                        "mode": Choice("blocking", "non-blocking"), "max-buffer-size": _SIZE}),
    "data-root": HostPath(managed=True, exactly=("/var/lib/docker",), example="/srv/docker"),
    "exec-root": HostPath(managed=True, exactly=("/run/docker", "/var/run/docker"),
                          example="/run/docker"),
    "storage-driver": Choice("overlay2", "fuse-overlayfs", "btrfs", "zfs", "vfs"),
    "hosts": ListOf(Name(r"unix:///run/[A-Za-z0-9._-]{1,64}\.sock|fd://|tcp://"
                         r"[A-Za-z0-9.-]{1,253}:[0-9]{1,5}",
                         "unix:///run/NAME.sock, fd:// or tcp://HOST:PORT (with TLS)",
                         example="unix:///run/docker.sock"), max_items=8),
    "tls": Flag(), "tlsverify": Flag(),
    "tlscacert": _TLS_FILE, "tlscert": _TLS_FILE, "tlskey": _TLS_FILE,
    "default-runtime": Choice("runc", "crun", "nvidia"),
    "runtimes": Mapping_(Name(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", "a runtime name like 'crun'",
                              example="crun", also=(_no_nvidia_runtime,)),
                         Record({"path": HostPath(under=("/usr/bin", "/usr/sbin",
                                                         "/usr/local/bin"),
                                                  example="/usr/bin/crun")}, required=("path",)),
                         max_items=8),
    "insecure-registries": ListOf(Name(HOST_NAME + r"(:[0-9]{1,5})?", "a registry host[:port]",
                                       example="registry.lab:5000", also=(_not_everything,)),
                                  max_items=16),
    "registry-mirrors": ListOf(Url(("https",)), max_items=16),
    "dns": ListOf(Address(example="10.0.0.2"), max_items=8),
    "dns-search": ListOf(Name(HOST_NAME, "a domain like 'lab.example'", example="lab.example"),
                         max_items=8),
    "bip": _CIDR,
    "default-address-pools": ListOf(Record({"base": _CIDR, "size": Number(8, 30)},
                                           required=("base", "size")), max_items=16),
    "mtu": Number(576, 9216),
    "live-restore": Flag(), "userland-proxy": Flag(), "icc": Flag(), "ipv6": Flag(),
    "iptables": Flag(), "ip6tables": Flag(), "ip-masq": Flag(), "debug": Flag(),
    "experimental": Flag(), "no-new-privileges": Flag(),
    "userns-remap": Name(r"default|[a-z_][a-z0-9_-]{0,31}", "'default' or a user name",
                         example="default"),
    "max-concurrent-downloads": Number(1, 64), "max-concurrent-uploads": Number(1, 64),
    "max-download-attempts": Number(1, 64), "shutdown-timeout": Number(0, 3600),
    "features": Record({"buildkit": Flag(), "containerd-snapshotter": Flag(), "cdi": Flag()}),
    "exec-opts": ListOf(Choice("native.cgroupdriver=systemd", "native.cgroupdriver=cgroupfs"),
                        max_items=2),
}, refused={
    "proxies": "proxies come from base_http_proxy, base_https_proxy and base_no_proxy (their "
               "credentials kept in root-only files); remove it here",
    "pidfile": "dlws leaves dockerd's pid file where the package puts it; remove it",
}, what="of daemon.json settings", also=(json_data, _tls_for_tcp))


KEYS = [
    Key("containers_engine", KEY_DEFAULTS["containers_engine"], (str,),
        "container engine: none = no engine; docker = Docker (the docker group is "
        "root-equivalent); podman = the distribution's Podman, rootless for every "
        "base_lab_users member (own subordinate uid/gid ranges, no root-equivalent group); "
        "both = Docker and rootless Podman. Where a GPU is declared on a machine of its own, "
        "NVIDIA's container toolkit too", choices=ENGINES),
    Key("containers_gpu_mode", KEY_DEFAULTS["containers_gpu_mode"], (str,),
        "how GPUs reach containers (GPU hosts): cdi = the CDI spec /etc/cdi/nvidia.yaml, kept "
        "current by nvidia-cdi-refresh (Podman always; Docker where its version has CDI, else "
        "Docker stays on the nvidia runtime with /dev/char links); legacy = Docker's nvidia "
        "runtime hook, with /dev/char links for every NVIDIA device node and the udev rule that "
        "keeps them (so a systemctl daemon-reload leaves running containers their GPUs)",
        choices=GPU_MODES),
    Key("containers_subid_count", 65536, (int,),
        "subordinate uids and gids each lab user gets for rootless Podman (podman/both): one "
        "free range in /etc/subuid and /etc/subgid, never overlapping another; existing ranges "
        "are kept (65536 = a full 16-bit id space, as useradd gives)",
        check=Number(65536, 16_777_216)),
    Key("containers_engine_source", KEY_DEFAULTS["containers_engine_source"], (str,),
        "where Docker comes from: distro = the distribution's docker.io; docker_repo = Docker's "
        "repository (docker-ce, key fingerprint checked)", choices=ENGINE_SOURCES),
    Key("containers_daemon_json", {"log-driver": "json-file",
                                   "log-opts": {"max-size": "100m", "max-file": "3"}}, (dict,),
        "/etc/docker/daemon.json (the original kept as daemon.json.dlws-orig); on GPU hosts "
        "nvidia-ctk adds the nvidia runtime to it; only the settings in DAEMON_JSON, each "
        "with its domain", check=DAEMON_JSON),
    Key("containers_docker_users", KEY_DEFAULTS["containers_docker_users"], (list,),
        "users put in the docker group; the group is root-equivalent (anyone in it can mount / "
        "into a container), and verify fails any other member",
        check=ListOf(user_name(), max_items=1000)),
    Key("containers_toolkit_version", KEY_DEFAULTS["containers_toolkit_version"], (str,),
        "NVIDIA container toolkit packages installed on GPU hosts (NVIDIA's install guide pins "
        "all four to one version)",
        check=Name(TOOLKIT_VERSION, "a toolkit package version like '1.18.0-1'",
                   example="1.18.0-1")),
    Key("containers_gpu_check_image", "ubuntu:24.04", (str,),
        "image verify runs with --gpus all to list the GPUs (nvidia-smi comes from the host "
        "through the toolkit)", check=_IMAGE_REF),
    Key("containers_rootless_check_image", "docker.io/library/ubuntu:24.04", (str,),
        "image verify runs rootless as each lab user (podman/both): it must hold sh and cat; "
        "fully qualified, as Podman resolves no short names without a registries.conf "
        "search list", check=_IMAGE_REF),
]
DEFAULTS = defaults(KEYS)
