"""The plan matrix and helpers the plan-level role tests share (recorded facts, @fake hosts).

Each case is a pyinfra @fake host that answers the facts with recorded command output
(tests/fixtures/plan/); the real deploy file is loaded as the CLI loads it and every operation's
command generator is run (tests/fake_hosts.py). Nothing is executed: this proves the plan for
Ubuntu, NVIDIA's repository and a present GPU, which no container here can run for real.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dlws.roles import nvidia_repo
from dlws.roles.cudnn import NCCL_PREFERENCES
from dlws.roles.nvidia_driver import NOUVEAU_BLACKLIST, REBOOT_MARKER
from dlws.stack.table import repo_key
from tests.fake_hosts import Run, facts, plan

OSES = ("ubuntu-22.04", "ubuntu-24.04", "debian-12", "debian-13")


# case GPU -> (lspci fixture, gpu_count, gpu_model as the inventory declares it)
GPUS = {
    "no-gpu": (None, 0, None),
    "gtx-1080": ("gtx-1080", 1, "NVIDIA GeForce GTX 1080"),
    "t4": ("t4", 1, "Tesla T4"),
    "rtx-3090": ("rtx-3090", 1, "NVIDIA GeForce RTX 3090"),
    "a100": ("a100", 1, "NVIDIA A100-SXM4-40GB"),
    "rtx-4090": ("rtx-4090", 1, "NVIDIA GeForce RTX 4090"),
    "h100x8": ("h100x8", 8, "NVIDIA H100 80GB HBM3"),
    "rtx-5090": ("rtx-5090", 1, "NVIDIA GeForce RTX 5090"),
    "b200x8": ("b200x8", 8, "NVIDIA B200"),
}


SOURCES = {"distro": "distro", "cuda-repo": "cuda_repo"}


REPO_PATHS = {"ubuntu-22.04": "ubuntu2204", "ubuntu-24.04": "ubuntu2404",
              "debian-12": "debian12", "debian-13": "debian13"}


# NVIDIA's signing key per repository path: (file, fingerprint), facts sheet section 0.
_3BF = ("3bf863cc.pub", "EB693B3035CD5710E231E123A4B469963BF863CC")


KEYS = {"ubuntu2204": _3BF, "ubuntu2404": _3BF, "debian12": _3BF,
        "debian13": ("8793F200.pub", "02182E60104FCDC26EAE1B8597A5D4CB8793F200")}


# Driver packages, as apt is asked for them.
U_GEFORCE_PROP = "linux-modules-nvidia-580-generic nvidia-headless-no-dkms-580 nvidia-utils-580"


U_GEFORCE_OPEN = ("linux-modules-nvidia-580-open-generic nvidia-headless-no-dkms-580-open "
                  "nvidia-utils-580")


U_SERVER_OPEN = ("linux-modules-nvidia-580-server-open-generic "
                 "nvidia-headless-no-dkms-580-server-open nvidia-utils-580-server")


D_PROP = "nvidia-kernel-dkms nvidia-driver nvidia-smi libcuda1 libnvidia-ml1 nvidia-persistenced"


R_PROP = "nvidia-driver-pinning-580 cuda-drivers"


R_OPEN = "nvidia-driver-pinning-580 nvidia-open"


NCCL = "libnccl2 libnccl-dev"


# NVSwitch boards (the x8 fixtures list the switches as PCI bridges, class 0680). From R580
# NVIDIA's repository names the fabric manager and NSCQ without a branch; Ubuntu's archive
# keeps the branch. NVLink 5 boards (B200) get NVLSM on every install path (gpu-driver-container).
FM_UBUNTU = " nvidia-fabricmanager-580 libnvidia-nscq-580"


FM_REPO = " nvidia-fabricmanager libnvidia-nscq"


NVLSM = " nvlsm infiniband-diags"


REFUSED = "refused"


class Case(NamedTuple):
    """A planned host of the matrix: the packages of each apt install ("" = no such install) and
    whether NVIDIA's repository is used."""

    id: str
    os: str
    gpu: str
    source: str
    driver: str
    cuda: str
    cudnn_nccl: str
    repo: bool


class Refused(NamedTuple):
    """A host of the matrix the plan refuses, naming this key, before any operation."""

    id: str
    os: str
    gpu: str
    source: str
    key: str


# Every OS x GPU setup x driver source (Debian's own driver: 535 on 12, 550 on 13, proprietary
# by default below R560, with its own toolkit; NVIDIA's repository: R580 and CUDA 12.9/13.0,
# Debian 13's path has no 12.x; Debian refuses Blackwell and NVSwitch boards from its archive).
CASES: list[Case | Refused] = [
    Case('ubuntu-22.04_no-gpu_distro', os='ubuntu-22.04', gpu='no-gpu', source='distro',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('ubuntu-22.04_no-gpu_cuda-repo', os='ubuntu-22.04', gpu='no-gpu', source='cuda-repo',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('ubuntu-22.04_gtx-1080_distro', os='ubuntu-22.04', gpu='gtx-1080', source='distro',
         driver=U_GEFORCE_PROP, cuda='cuda-toolkit-12-9', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_gtx-1080_cuda-repo', os='ubuntu-22.04', gpu='gtx-1080', source='cuda-repo',
         driver=R_PROP, cuda='cuda-toolkit-12-9', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_t4_distro', os='ubuntu-22.04', gpu='t4', source='distro',
         driver=U_SERVER_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_t4_cuda-repo', os='ubuntu-22.04', gpu='t4', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_rtx-3090_distro', os='ubuntu-22.04', gpu='rtx-3090', source='distro',
         driver=U_GEFORCE_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_rtx-3090_cuda-repo', os='ubuntu-22.04', gpu='rtx-3090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_a100_distro', os='ubuntu-22.04', gpu='a100', source='distro',
         driver=U_SERVER_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_a100_cuda-repo', os='ubuntu-22.04', gpu='a100', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_rtx-4090_distro', os='ubuntu-22.04', gpu='rtx-4090', source='distro',
         driver=U_GEFORCE_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_rtx-4090_cuda-repo', os='ubuntu-22.04', gpu='rtx-4090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_h100x8_distro', os='ubuntu-22.04', gpu='h100x8', source='distro',
         driver=U_SERVER_OPEN + FM_UBUNTU, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Case('ubuntu-22.04_h100x8_cuda-repo', os='ubuntu-22.04', gpu='h100x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Case('ubuntu-22.04_rtx-5090_distro', os='ubuntu-22.04', gpu='rtx-5090', source='distro',
         driver=U_GEFORCE_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_rtx-5090_cuda-repo', os='ubuntu-22.04', gpu='rtx-5090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-22.04_b200x8_distro', os='ubuntu-22.04', gpu='b200x8', source='distro',
         driver=U_SERVER_OPEN + FM_UBUNTU + NVLSM, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL,
         repo=True),
    Case('ubuntu-22.04_b200x8_cuda-repo', os='ubuntu-22.04', gpu='b200x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO + NVLSM, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Case('ubuntu-24.04_no-gpu_distro', os='ubuntu-24.04', gpu='no-gpu', source='distro',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('ubuntu-24.04_no-gpu_cuda-repo', os='ubuntu-24.04', gpu='no-gpu', source='cuda-repo',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('ubuntu-24.04_gtx-1080_distro', os='ubuntu-24.04', gpu='gtx-1080', source='distro',
         driver=U_GEFORCE_PROP, cuda='cuda-toolkit-12-9', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_gtx-1080_cuda-repo', os='ubuntu-24.04', gpu='gtx-1080', source='cuda-repo',
         driver=R_PROP, cuda='cuda-toolkit-12-9', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_t4_distro', os='ubuntu-24.04', gpu='t4', source='distro',
         driver=U_SERVER_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_t4_cuda-repo', os='ubuntu-24.04', gpu='t4', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_rtx-3090_distro', os='ubuntu-24.04', gpu='rtx-3090', source='distro',
         driver=U_GEFORCE_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_rtx-3090_cuda-repo', os='ubuntu-24.04', gpu='rtx-3090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_a100_distro', os='ubuntu-24.04', gpu='a100', source='distro',
         driver=U_SERVER_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_a100_cuda-repo', os='ubuntu-24.04', gpu='a100', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_rtx-4090_distro', os='ubuntu-24.04', gpu='rtx-4090', source='distro',
         driver=U_GEFORCE_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_rtx-4090_cuda-repo', os='ubuntu-24.04', gpu='rtx-4090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_h100x8_distro', os='ubuntu-24.04', gpu='h100x8', source='distro',
         driver=U_SERVER_OPEN + FM_UBUNTU, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Case('ubuntu-24.04_h100x8_cuda-repo', os='ubuntu-24.04', gpu='h100x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Case('ubuntu-24.04_rtx-5090_distro', os='ubuntu-24.04', gpu='rtx-5090', source='distro',
         driver=U_GEFORCE_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_rtx-5090_cuda-repo', os='ubuntu-24.04', gpu='rtx-5090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('ubuntu-24.04_b200x8_distro', os='ubuntu-24.04', gpu='b200x8', source='distro',
         driver=U_SERVER_OPEN + FM_UBUNTU + NVLSM, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL,
         repo=True),
    Case('ubuntu-24.04_b200x8_cuda-repo', os='ubuntu-24.04', gpu='b200x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO + NVLSM, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Case('debian-12_no-gpu_distro', os='debian-12', gpu='no-gpu', source='distro',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('debian-12_no-gpu_cuda-repo', os='debian-12', gpu='no-gpu', source='cuda-repo',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('debian-12_gtx-1080_distro', os='debian-12', gpu='gtx-1080', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-12_gtx-1080_cuda-repo', os='debian-12', gpu='gtx-1080', source='cuda-repo',
         driver=R_PROP, cuda='cuda-toolkit-12-9', cudnn_nccl="", repo=True),
    Case('debian-12_t4_distro', os='debian-12', gpu='t4', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-12_t4_cuda-repo', os='debian-12', gpu='t4', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('debian-12_rtx-3090_distro', os='debian-12', gpu='rtx-3090', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-12_rtx-3090_cuda-repo', os='debian-12', gpu='rtx-3090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('debian-12_a100_distro', os='debian-12', gpu='a100', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-12_a100_cuda-repo', os='debian-12', gpu='a100', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('debian-12_rtx-4090_distro', os='debian-12', gpu='rtx-4090', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-12_rtx-4090_cuda-repo', os='debian-12', gpu='rtx-4090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Refused('debian-12_h100x8_distro', os='debian-12', gpu='h100x8', source='distro',
            key='nvidia_driver_source'),
    Case('debian-12_h100x8_cuda-repo', os='debian-12', gpu='h100x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Refused('debian-12_rtx-5090_distro', os='debian-12', gpu='rtx-5090', source='distro',
            key='nvidia_driver_source'),
    Case('debian-12_rtx-5090_cuda-repo', os='debian-12', gpu='rtx-5090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Refused('debian-12_b200x8_distro', os='debian-12', gpu='b200x8', source='distro',
            key='nvidia_driver_source'),
    Case('debian-12_b200x8_cuda-repo', os='debian-12', gpu='b200x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO + NVLSM, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Case('debian-13_no-gpu_distro', os='debian-13', gpu='no-gpu', source='distro',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('debian-13_no-gpu_cuda-repo', os='debian-13', gpu='no-gpu', source='cuda-repo',
         driver="", cuda="", cudnn_nccl="", repo=False),
    Case('debian-13_gtx-1080_distro', os='debian-13', gpu='gtx-1080', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-13_gtx-1080_cuda-repo', os='debian-13', gpu='gtx-1080', source='cuda-repo',
         driver=R_PROP, cuda="", cudnn_nccl="", repo=True),
    Case('debian-13_t4_distro', os='debian-13', gpu='t4', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-13_t4_cuda-repo', os='debian-13', gpu='t4', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('debian-13_rtx-3090_distro', os='debian-13', gpu='rtx-3090', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-13_rtx-3090_cuda-repo', os='debian-13', gpu='rtx-3090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('debian-13_a100_distro', os='debian-13', gpu='a100', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-13_a100_cuda-repo', os='debian-13', gpu='a100', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Case('debian-13_rtx-4090_distro', os='debian-13', gpu='rtx-4090', source='distro',
         driver=D_PROP, cuda='nvidia-cuda-toolkit', cudnn_nccl="", repo=False),
    Case('debian-13_rtx-4090_cuda-repo', os='debian-13', gpu='rtx-4090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Refused('debian-13_h100x8_distro', os='debian-13', gpu='h100x8', source='distro',
            key='nvidia_driver_source'),
    Case('debian-13_h100x8_cuda-repo', os='debian-13', gpu='h100x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
    Refused('debian-13_rtx-5090_distro', os='debian-13', gpu='rtx-5090', source='distro',
            key='nvidia_driver_source'),
    Case('debian-13_rtx-5090_cuda-repo', os='debian-13', gpu='rtx-5090', source='cuda-repo',
         driver=R_OPEN, cuda='cuda-toolkit-13-0', cudnn_nccl="", repo=True),
    Refused('debian-13_b200x8_distro', os='debian-13', gpu='b200x8', source='distro',
            key='nvidia_driver_source'),
    Case('debian-13_b200x8_cuda-repo', os='debian-13', gpu='b200x8', source='cuda-repo',
         driver=R_OPEN + FM_REPO + NVLSM, cuda='cuda-toolkit-13-0', cudnn_nccl=NCCL, repo=True),
]


def host_data(os: str, gpu: str, source: str, **more) -> dict:
    lspci, count, model = GPUS[gpu]
    # No hash locks for these recorded hosts (their CUDA wheels' index is not reachable here):
    # the locked install has its own tests below.
    data = {"gpu_count": count, "nvidia_driver_source": source, "python_env_require_hashes": False,
            "fake_responses": facts(os, lspci, **more.pop("facts", {}))}
    if model:
        data["gpu_model"] = model
    return {**data, **more}


def run_case(case_id: str, data: dict, **kwargs) -> Run:
    name = f"@fake/{case_id}"
    return plan({name: data}, **kwargs)[kwargs.get("local_name") or name]


def packages(run: Run, op_fragment: str) -> str:
    """The packages of the one `apt-get install` in the operations named like this."""
    ops = run.named(op_fragment)
    if not ops:
        return ""
    assert len(ops) == 1, f"{len(ops)} operations named {op_fragment!r}:\n{run.describe()}"
    installs = [c for c in ops[0].commands if "apt-get" in c and " install " in c]
    assert len(installs) == 1, f"{op_fragment!r} runs {installs}"
    return " ".join(w for w in installs[0].split(" install ", 1)[1].split()
                    if not w.startswith("-") or w.endswith("-") and not w.startswith("--"))


def pip_installs(run: Run, op_fragment: str) -> list[str]:
    """The pip or uv install of each operation named like this; each must be followed by the
    record of the bytecode it compiled, written under the environment's own interpreter
    without its site (verify checks the bytecode against it)."""
    installs = []
    for op in run.named(op_fragment):
        assert len(op.commands) == 2, f"{op.name}: {op.commands}"
        install, record = op.commands
        # uv names the environment's interpreter; pip is the environment's own
        where = re.search(r" --python (/\S+)/bin/python ", install) or re.search(
            r"(/\S+)/bin/pip install ", install)
        assert where, install
        prefix = where[1]
        assert record.startswith(f"{prefix}/bin/python -I -S -B -c "), (op.name, record[:200])
        assert f'"bytecode": ["{prefix}", "record-bytecode", "installed"]' in record, op.name
        installs.append(install)
    return installs


def assert_repository(run: Run, os: str, used: bool) -> None:
    uploads = run.uploads()
    if not used:
        assert nvidia_repo.SOURCES not in uploads, run.describe()
        assert not run.named("Install NVIDIA's repository key"), run.describe()
        assert not any("developer.download.nvidia.com" in c for c in run.commands())
        return
    url = f"https://developer.download.nvidia.com/compute/cuda/repos/{REPO_PATHS[os]}/x86_64/"
    sources = uploads.get(nvidia_repo.SOURCES)
    assert sources is not None, f"no {nvidia_repo.SOURCES}:\n{run.describe()}"
    assert f"URIs: {url}\n" in sources, sources
    assert f"Signed-By: {nvidia_repo.KEYRING}\n" in sources, sources
    assert "Types: deb\n" in sources and "Suites: /\n" in sources, sources
    [key] = run.named("Install NVIDIA's repository key")
    assert key.conditional, "the key is fetched only when the keyring does not hold it alone"
    # Each repository path has its own key (debian13: 8793F200.pub).
    signing = repo_key(REPO_PATHS[os])
    assert (signing.file, signing.fingerprint) == KEYS[REPO_PATHS[os]], signing
    assert f"-- {url}{signing.file}; " in key.commands[0], key.commands
    assert f"[ \"$f\" != {signing.fingerprint} ]" in key.commands[0], "fingerprint checked"
    assert "Pin: origin developer.download.nvidia.com" in uploads[nvidia_repo.PREFERENCES]
    order = [op.name for op in run.ops]
    first_repo_install = min(i for i, op in enumerate(run.ops)
                             if any("apt-get" in c and " install " in c for c in op.commands)
                             and "gnupg" not in " ".join(op.commands)
                             and i > order.index(key.name))
    sources_at = next(i for i, op in enumerate(run.ops) if nvidia_repo.SOURCES in op.uploads)
    assert sources_at < first_repo_install, "the repository is added before it is used"


def assert_nccl_pin(run: Run, nccl: str, repo: bool) -> None:
    """NVIDIA's libnccl2 is held to the planned CUDA's build (libnccl2=<version>+cuda<X.Y>)."""
    pin = run.uploads().get(NCCL_PREFERENCES)
    if "libnccl2" in nccl and repo:
        cuda = run.stack.cuda.version
        assert pin and f"Pin: version *+cuda{cuda}\n" in pin, run.describe()
        assert "Package: libnccl2 libnccl-dev\n" in pin and "Pin-Priority: 1001" in pin, pin
        order = [i for i, op in enumerate(run.ops) if NCCL_PREFERENCES in op.uploads]
        install = [i for i, op in enumerate(run.ops) if "libnccl2" in " ".join(op.commands)]
        assert order and install and order[0] < install[0], "the pin is written before apt runs"
    else:
        assert pin is None, run.describe()


def assert_kernel_side(run: Run, driver: bool, reboot: str) -> None:
    """nouveau blacklist, initramfs and the reboot decision ("marker", "reboot" or "none")."""
    blacklist = [op for op in run.ops if NOUVEAU_BLACKLIST in op.uploads]
    if driver:
        assert blacklist, f"no nouveau blacklist:\n{run.describe()}"
        assert "blacklist nouveau" in blacklist[0].uploads[NOUVEAU_BLACKLIST]
        [initramfs] = run.named("initramfs")
        assert initramfs.commands == ["update-initramfs -u"] and initramfs.conditional
    else:
        assert not blacklist and not run.named("initramfs"), run.describe()
    reboots = [op for op in run.ops if any(c.startswith("( sleep 1 && reboot )")
                                           for c in op.commands)]
    markers = [op for op in run.ops if f"touch {REBOOT_MARKER}" in op.commands]
    assert (len(reboots), len(markers)) == {"reboot": (1, 0), "marker": (0, 1),
                                            "none": (0, 0)}[reboot], run.describe()
    assert all(op.conditional for op in reboots + markers), "only after the driver changed"


OLD_DRIVER = {"facts": {"driver": "535.183.01", "nvidia_packages": "ubuntu-22.04_t4_535-server"}}


OLD_PACKAGES = [
    "libnvidia-cfg1-535-server", "libnvidia-compute-535-server",
    "linux-modules-nvidia-535-server-5.15.0-125-generic",
    "linux-modules-nvidia-535-server-generic", "nvidia-compute-utils-535-server",
    "nvidia-firmware-535-server-535.183.01", "nvidia-headless-no-dkms-535-server",
    "nvidia-kernel-common-535-server", "nvidia-utils-535-server",
]


# (case id, os, gpu, host data, driver packages, reboot decision)
EXTRA = [
    # Ubuntu's module packages follow the running kernel's flavour: HWE and cloud kernels.
    ("ubuntu-22.04_rtx-4090_distro_hwe-kernel", "ubuntu-22.04", "rtx-4090",
     {"facts": {"kernel": "6.8.0-51-generic"}},
     "linux-modules-nvidia-580-open-generic-hwe-22.04 nvidia-headless-no-dkms-580-open "
     "nvidia-utils-580", "marker"),
    ("ubuntu-24.04_t4_distro_aws-kernel", "ubuntu-24.04", "t4",
     {"facts": {"kernel": "6.8.0-1021-aws"}},
     "linux-modules-nvidia-580-server-open-aws nvidia-headless-no-dkms-580-server-open "
     "nvidia-utils-580-server", "marker"),
    # Debian 13 packages the open modules of R550: asked for, they come with the GSP firmware.
    ("debian-13_rtx-4090_distro_open", "debian-13", "rtx-4090",
     {"nvidia_driver_flavour": "open"},
     "nvidia-open-kernel-dkms firmware-nvidia-gsp nvidia-driver nvidia-smi libcuda1 "
     "libnvidia-ml1 nvidia-persistenced", "marker"),
    # The reboot switch.
    ("ubuntu-24.04_rtx-4090_distro_reboot", "ubuntu-24.04", "rtx-4090",
     {"nvidia_driver_reboot": True}, U_GEFORCE_OPEN, "reboot"),
    ("debian-12_a100_distro_reboot", "debian-12", "a100",
     {"nvidia_driver_reboot": True}, D_PROP, "reboot"),
    # Containers: the host's kernel runs the module; auto plans no driver at all.
    ("debian-12_rtx-4090_container", "debian-12", "rtx-4090",
     {"facts": {"container": "docker"}, "nvidia_driver_reboot": True}, "", "none"),
    ("ubuntu-24.04_rtx-4090_container", "ubuntu-24.04", "rtx-4090",
     {"facts": {"container": "docker"}}, "", "none"),
    # A pinned branch in a container: user space only, matching the host's module.
    ("debian-12_t4_container_driver-535", "debian-12", "t4",
     {"facts": {"container": "docker"}, "nvidia_driver_branch": "535",
      "nvidia_driver_reboot": True},
     "nvidia-smi libcuda1 libnvidia-ml1", "none"),
    ("ubuntu-24.04_t4_container_driver-580", "ubuntu-24.04", "t4",
     {"facts": {"container": "docker"}, "nvidia_driver_branch": "580"},
     "libnvidia-compute-580-server nvidia-utils-580-server", "none"),
    ("ubuntu-24.04_rtx-4090_container_cuda-repo_driver-580", "ubuntu-24.04", "rtx-4090",
     {"facts": {"container": "docker"}, "nvidia_driver_branch": "580",
      "nvidia_driver_source": "cuda_repo"},
     "nvidia-driver-pinning-580 libnvidia-compute-580 nvidia-utils-580", "none"),
]


GPUS.update({
    "h200": ("h200", 1, "NVIDIA H200"),
    "tesla-m40": ("tesla-m40", 1, "Tesla M40"),
})
