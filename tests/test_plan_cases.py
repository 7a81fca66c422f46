"""deploy/workstation.py per OS, GPU and driver source: the exact commands it plans, offline.

Each case is a pyinfra @fake host that answers the facts with recorded command output
(tests/fixtures/plan/); the real deploy file is loaded as the CLI loads it and every operation's
command generator is run (tests/fake_hosts.py). Nothing is executed: this proves the plan for
Ubuntu, NVIDIA's repository and a present GPU, which no container here can run for real.
"""

from __future__ import annotations

import re

import pytest

from dlws import locks as lock
from dlws.stack.table import repo_key
from roles import nvidia_repo
from roles.cudnn import NCCL_PREFERENCES
from roles.nvidia_driver import NOUVEAU_BLACKLIST, NVIDIA_DRM_MODESET, REBOOT_MARKER
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

# (case id, driver packages, CUDA packages, cuDNN/NCCL packages, NVIDIA's repository used)
# or (case id, REFUSED, the key the refusal names). "" = no such apt install at all.
_U = [
    ("no-gpu_distro", "", "", "", False),
    ("no-gpu_cuda-repo", "", "", "", False),
    ("gtx-1080_distro", U_GEFORCE_PROP, "cuda-toolkit-12-9", "", True),
    ("gtx-1080_cuda-repo", R_PROP, "cuda-toolkit-12-9", "", True),
    ("t4_distro", U_SERVER_OPEN, "cuda-toolkit-13-0", "", True),
    ("t4_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
    ("rtx-3090_distro", U_GEFORCE_OPEN, "cuda-toolkit-13-0", "", True),
    ("rtx-3090_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
    ("a100_distro", U_SERVER_OPEN, "cuda-toolkit-13-0", "", True),
    ("a100_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
    ("rtx-4090_distro", U_GEFORCE_OPEN, "cuda-toolkit-13-0", "", True),
    ("rtx-4090_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
    ("h100x8_distro", U_SERVER_OPEN + FM_UBUNTU, "cuda-toolkit-13-0", NCCL, True),
    ("h100x8_cuda-repo", R_OPEN + FM_REPO, "cuda-toolkit-13-0", NCCL, True),
    ("rtx-5090_distro", U_GEFORCE_OPEN, "cuda-toolkit-13-0", "", True),
    ("rtx-5090_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
    ("b200x8_distro", U_SERVER_OPEN + FM_UBUNTU + NVLSM, "cuda-toolkit-13-0", NCCL, True),
    ("b200x8_cuda-repo", R_OPEN + FM_REPO + NVLSM, "cuda-toolkit-13-0", NCCL, True),
]


def _debian(gtx_repo_cuda: str) -> list[tuple]:
    # Debian's own driver (535 on 12, 550 on 13: proprietary by default below R560) with its own
    # toolkit; NVIDIA's repository has R580 and CUDA 12.9/13.0 (Debian 13's path has no 12.x).
    return [
        ("no-gpu_distro", "", "", "", False),
        ("no-gpu_cuda-repo", "", "", "", False),
        ("gtx-1080_distro", D_PROP, "nvidia-cuda-toolkit", "", False),
        ("gtx-1080_cuda-repo", R_PROP, gtx_repo_cuda, "", True),
        ("t4_distro", D_PROP, "nvidia-cuda-toolkit", "", False),
        ("t4_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
        ("rtx-3090_distro", D_PROP, "nvidia-cuda-toolkit", "", False),
        ("rtx-3090_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
        ("a100_distro", D_PROP, "nvidia-cuda-toolkit", "", False),
        ("a100_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
        ("rtx-4090_distro", D_PROP, "nvidia-cuda-toolkit", "", False),
        ("rtx-4090_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
        # An HGX board's NVSwitches need NVIDIA's fabric manager, which Debian doesn't package.
        ("h100x8_distro", REFUSED, "nvidia_driver_source"),
        ("h100x8_cuda-repo", R_OPEN + FM_REPO, "cuda-toolkit-13-0", NCCL, True),
        # Blackwell needs R570+ with the open modules: neither Debian release packages one.
        ("rtx-5090_distro", REFUSED, "nvidia_driver_source"),
        ("rtx-5090_cuda-repo", R_OPEN, "cuda-toolkit-13-0", "", True),
        ("b200x8_distro", REFUSED, "nvidia_driver_source"),
        ("b200x8_cuda-repo", R_OPEN + FM_REPO + NVLSM, "cuda-toolkit-13-0", NCCL, True),
    ]


EXPECTED = {
    "ubuntu-22.04": _U,
    "ubuntu-24.04": _U,
    "debian-12": _debian(gtx_repo_cuda="cuda-toolkit-12-9"),
    "debian-13": _debian(gtx_repo_cuda=""),
}
CASES = [(f"{os}_{row[0]}", os, *row) for os in OSES for row in EXPECTED[os]]


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


@pytest.mark.parametrize(("case_id", "os", "row"), [(c[0], c[1], c[2:]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_plan(case_id, os, row):
    gpu, source = row[0].split("_")
    run = run_case(case_id, host_data(os, gpu, SOURCES[source]))
    if row[1] == REFUSED:
        assert run.error, f"the solver allowed it:\n{run.describe()}"
        assert f"host @fake/{case_id}: {row[2]}:" in run.error, run.error
        assert run.ops == [], "refused before any operation is planned"
        return
    assert run.error is None, run.error
    _, driver, cuda, extra, repo = row
    assert packages(run, "Install the NVIDIA driver") == driver, run.describe()
    assert packages(run, "Install the CUDA toolkit") == cuda, run.describe()
    assert (packages(run, "cuDNN and NCCL | Install") or "") == extra, run.describe()
    assert_repository(run, os, repo)
    assert_kernel_side(run, driver=bool(driver), reboot="marker" if driver else "none")
    assert_nccl_pin(run, extra, repo)
    if driver:
        [persistenced] = run.named("nvidia-persistenced")
        assert persistenced.commands == ["systemctl enable nvidia-persistenced.service"], (
            "enabled only: the new module is not loaded before the reboot")
        flavour = run.stack.driver.flavour
        assert ("open" in driver) == (flavour == "open"), (driver, flavour)
        assert f"({flavour} kernel modules" in run.named("Install the NVIDIA driver")[0].name
        fabric = run.named("fabric manager")
        assert bool(fabric) == ("fabricmanager" in driver), run.describe()


def test_case_count():
    # 4 releases x 9 GPU setups x 2 sources; Debian refuses Blackwell and NVSwitch boards from
    # its own archive.
    assert len(CASES) == 72
    assert sum(row[3] == REFUSED for row in CASES) == 6


# --- cases beyond the matrix -----------------------------------------------------------------

OLD_DRIVER = {"facts": {"driver": "535.183.01", "nvidia_packages": "ubuntu-22.04_t4_535-server"}}
OLD_PACKAGES = [
    "libnvidia-cfg1-535-server", "libnvidia-compute-535-server",
    "linux-modules-nvidia-535-server-5.15.0-125-generic",
    "linux-modules-nvidia-535-server-generic", "nvidia-compute-utils-535-server",
    "nvidia-firmware-535-server-535.183.01", "nvidia-headless-no-dkms-535-server",
    "nvidia-kernel-common-535-server", "nvidia-utils-535-server",
]


def test_older_driver_stops_the_deploy_naming_the_key():
    case = "ubuntu-22.04_t4_driver-535-installed"
    run = run_case(case, host_data("ubuntu-22.04", "t4", "distro", **OLD_DRIVER))
    assert run.error and f"host @fake/{case}: nvidia_driver_replace:" in run.error, run.error
    assert "535.183.01" in run.error and "580" in run.error, run.error
    assert not run.named("NVIDIA driver"), "nothing of the driver role was planned"


def test_older_driver_is_purged_in_the_same_apt_command():
    case = "ubuntu-22.04_t4_driver-535-replaced"
    run = run_case(case, host_data("ubuntu-22.04", "t4", "distro", nvidia_driver_replace=True,
                                   **OLD_DRIVER))
    assert run.error is None, run.error
    [install] = run.named("Install the NVIDIA driver")
    [command] = install.commands
    assert " --purge " in command, command
    # pyinfra puts extra_install_args before the packages: removals first, then the new driver.
    assert packages(run, "Install the NVIDIA driver") == " ".join(
        [*(f"{name}-" for name in OLD_PACKAGES), U_SERVER_OPEN]), command
    # Not the driver: the container toolkit, Ubuntu's CUDA toolkit, the shared module signatures.
    for kept in ("nvidia-container-toolkit", "libnvidia-container1", "nvidia-cuda-toolkit",
                 "linux-signatures-nvidia"):
        assert f" {kept}-" not in command and f" {kept}:" not in command, command


def test_same_branch_installed_is_kept():
    run = run_case("ubuntu-22.04_t4_driver-580-installed",
                   host_data("ubuntu-22.04", "t4", "distro",
                             facts={"driver": "580.95.05"}))
    assert run.error is None, run.error
    assert not run.named("Install the NVIDIA driver") and not run.named("nouveau")


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


@pytest.mark.parametrize(("case_id", "os", "gpu", "data", "driver", "reboot"), EXTRA,
                         ids=[c[0] for c in EXTRA])
def test_plan_variant(case_id, os, gpu, data, driver, reboot):
    data = dict(data)
    source = data.pop("nvidia_driver_source", "auto")
    run = run_case(case_id, host_data(os, gpu, source, **data))
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == driver, run.describe()
    in_container = "container" in case_id
    assert_kernel_side(run, driver=bool(driver) and not in_container, reboot=reboot)
    if in_container:
        assert not any("update-initramfs" in c or "modprobe" in c for c in run.commands())
        assert not run.named("nvidia-persistenced")


def test_refused_open_modules_on_debian_12():
    case = "debian-12_rtx-4090_distro_open"
    run = run_case(case, host_data("debian-12", "rtx-4090", "distro",
                                   nvidia_driver_flavour="open"))
    assert run.error and f"host @fake/{case}: nvidia_driver_flavour:" in run.error, run.error
    assert run.ops == []


@pytest.mark.parametrize("reboot", [False, True], ids=["reboot-off", "reboot-on"])
def test_controller_is_never_rebooted(reboot):
    """@local (the controller itself) gets the pending-reboot marker, never a reboot."""
    run = run_case("local", host_data("ubuntu-24.04", "rtx-4090", "auto",
                                      nvidia_driver_reboot=reboot), local_name="@local")
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == U_GEFORCE_OPEN
    assert_kernel_side(run, driver=True, reboot="marker")


def test_distro_driver_is_not_taken_from_nvidia_repository():
    """Ubuntu's driver with NVIDIA's toolkit: the repository's driver packages are pinned away,
    so apt never mixes its user space with Ubuntu's prebuilt modules."""
    run = run_case("ubuntu-24.04_rtx-4090_distro",
                   host_data("ubuntu-24.04", "rtx-4090", "distro"))
    preferences = run.uploads()[nvidia_repo.PREFERENCES]
    assert "Pin-Priority: -1" in preferences, preferences
    repo = run_case("ubuntu-24.04_rtx-4090_cuda-repo",
                    host_data("ubuntu-24.04", "rtx-4090", "cuda_repo"))
    assert "Pin-Priority: -1" not in repo.uploads()[nvidia_repo.PREFERENCES]


def test_nvidia_repository_through_the_fleet_cache():
    """Behind roles/cache's apt-cacher-ng, apt asks for NVIDIA's repository over http under NVIDIA's
    own host name (so the pin still matches), which the cache's Remap fetches from NVIDIA's
    https server and keeps; the key still comes straight over https, its fingerprint checked.
    Plan level: NVIDIA's repository is not reachable here."""
    from roles import cache
    from roles.base import APT_PROXY_FILE

    proxy = "http://10.0.0.5:3142"
    run = run_case("ubuntu-24.04_rtx-4090_through-cache",
                   host_data("ubuntu-24.04", "rtx-4090", "cuda_repo", cache_apt_proxy=proxy))
    uploads = run.uploads()
    prefix = "developer.download.nvidia.com/compute/cuda/repos"
    assert f"URIs: http://{prefix}/ubuntu2404/x86_64/\n" in uploads[nvidia_repo.SOURCES]
    assert f'Acquire::http::Proxy "{proxy}";' in uploads[APT_PROXY_FILE]
    [key] = run.named("Install NVIDIA's repository key")
    assert f"-- https://{prefix}/ubuntu2404/x86_64/" in key.commands[0], key.commands
    assert "Pin: origin developer.download.nvidia.com" in uploads[nvidia_repo.PREFERENCES]
    assert f"Remap-dlwscuda: {prefix} ; https://{prefix}\n" in cache.acng_conf()
    # Without a cache, straight to NVIDIA over https.
    direct = run_case("ubuntu-24.04_rtx-4090_cuda-repo",
                      host_data("ubuntu-24.04", "rtx-4090", "cuda_repo"))
    assert f"URIs: https://{prefix}/" in direct.uploads()[nvidia_repo.SOURCES]


def test_shared_pip_cache_installs_take_turns():
    # roles/cache: hosts that start together must not all miss the fleet's shared cache.
    data = host_data("debian-12", "no-gpu", "distro", cache_pip_dir="/srv/dlws-cache")
    run = run_case("debian-12_no-gpu_shared-cache", data)
    commands = [c for op in run.named("Install the frameworks") for c in op.commands]
    assert commands, run.describe()
    lock = "mkdir -p -- /srv/dlws-cache && flock /srv/dlws-cache/.dlws-install.lock "
    assert all(c.startswith(lock) for c in commands), commands


def _write_locks(folder, names: list[str]) -> dict[str, str]:
    """Stand-in locks under the names the refusal gave (a real one needs PyPI: `bin/dlws lock`)."""
    bodies = {}
    for name in names:
        pins = ["uv==0.13.9"] if name.startswith("uv-") else ["numpy==2.4.6", "mlxtend==0.25.0"]
        bodies[name] = "".join(f"{pin} \\\n    --hash=sha256:{'ab' * 32}\n" for pin in pins)
        (folder / name).write_text(bodies[name])
    return bodies


@pytest.mark.parametrize("cache", [None, "/srv/dlws-cache"], ids=["own-cache", "shared-cache"])
def test_hash_locked_installs(tmp_path, monkeypatch, cache):
    """With hashes required (the default), a host without its locks is refused before any
    operation; with them, both installs take the whole lock and check every file's sha256."""
    monkeypatch.setattr(lock, "LOCK_DIR", tmp_path)
    more = {"frameworks_tensorflow": "none", "frameworks_torch": "none",
            "python_env_require_hashes": True, "cache_pip_dir": cache}
    data = host_data("debian-12", "no-gpu", "distro", **more)
    refused = run_case("debian-12_no-gpu_locked", data)
    assert refused.ops == [] and "python_env_require_hashes" in (refused.error or ""), \
        refused.describe()
    names = re.findall(r"locks/(\S+\.txt)", refused.error)
    assert [n.split("-")[0] for n in names] == ["uv", "env"], refused.error

    bodies = _write_locks(tmp_path, names)
    run = run_case("debian-12_no-gpu_locked", data)
    uploads = run.uploads()
    for name, body in bodies.items():
        assert uploads.get(f"/opt/dlws/locks/{name}") == body, run.describe()
    for op_name, lock_name in (("Install uv", names[0]), ("from the hash lock", names[1])):
        [command] = [c for op in run.named(op_name) for c in op.commands]
        assert f"--no-deps --require-hashes -r /opt/dlws/locks/{lock_name}" in command, command
        if cache:
            # the shared cache first: uv offline, pip from the cache's wheel folder
            assert command.startswith(f"mkdir -p -- {cache} && flock {cache}/.dlws-install.lock "
                                      "sh -c "), command
            assert "--offline" in command or f"--no-index --find-links {cache}/wheels" in command
        else:
            assert "flock" not in command and "--offline" not in command, command


# --- GPU knowledge from NVIDIA's own lists (issue 12): each case names its primary source ----

GPUS.update({
    "h200": ("h200", 1, "NVIDIA H200"),
    "tesla-m40": ("tesla-m40", 1, "Tesla M40"),
})


def test_debian_13_repository_is_signed_by_its_own_key():
    """debian13 is signed by 8793F200.pub (fingerprint 02182E60...), not 3bf863cc."""
    run = run_case("debian-13_rtx-4090_cuda-repo_key",
                   host_data("debian-13", "rtx-4090", "cuda_repo"))
    assert run.error is None, run.error
    [key] = run.named("Install NVIDIA's repository key")
    url = "https://developer.download.nvidia.com/compute/cuda/repos/debian13/x86_64/"
    assert f"-- {url}8793F200.pub; " in key.commands[0], key.commands
    assert '[ "$f" != 02182E60104FCDC26EAE1B8597A5D4CB8793F200 ]' in key.commands[0]
    assert "3bf863cc" not in " ".join(key.commands).lower()
    assert "8793F200 (exactly one key, fingerprint checked)" in key.name, key.name


def test_h200_on_debian_12_gets_nvidias_r580_not_debians_r535():
    """Debian 12's archive has R535, whose lists lack the H200 (10de:2335): supported-gpus.json
    of nvidia-driver 535.261.03, nvidia-detect 535.261.03 and the 535.288.01 README; 550.40.65
    is the first release listing it. auto moves to NVIDIA's repository; a pinned 535 is
    refused before anything is planned, naming R550."""
    run = run_case("debian-12_h200_auto", host_data("debian-12", "h200", "auto"))
    assert run.error is None, run.error
    assert (run.stack.driver.branch, run.stack.driver.source) == ("580", "cuda_repo")
    assert packages(run, "Install the NVIDIA driver") == R_OPEN
    assert_repository(run, "debian-12", True)
    pinned = run_case("debian-12_h200_driver-535",
                      host_data("debian-12", "h200", "auto", nvidia_driver_branch="535"))
    assert pinned.ops == [] and pinned.error, pinned.describe()
    assert "nvidia_driver_branch: R535 does not support NVIDIA H200 (10de:2335): first " \
           "listed by R550" in pinned.error, pinned.error
    assert "set nvidia_driver_branch to 550 or newer" in pinned.error, pinned.error


def test_hgx_b200_on_ubuntus_archive_gets_nvlsm_from_nvidias_repository():
    """NVLink 5 boards need NVLSM on every install path: with Ubuntu's driver, nvlsm comes from
    NVIDIA's repository, whose driver packages stay pinned away (Pin-Priority -1)."""
    run = run_case("ubuntu-24.04_b200x8_distro_nvlsm",
                   host_data("ubuntu-24.04", "b200x8", "distro"))
    assert run.error is None, run.error
    driver = packages(run, "Install the NVIDIA driver").split()
    assert driver[:3] == U_SERVER_OPEN.split() and driver[3:] == [
        "nvidia-fabricmanager-580", "libnvidia-nscq-580", "nvlsm", "infiniband-diags"]
    assert "Pin-Priority: -1" in run.uploads()[nvidia_repo.PREFERENCES]
    first_key = min(i for i, op in enumerate(run.ops) if "repository key" in op.name)
    driver_at = next(i for i, op in enumerate(run.ops) if "Install the NVIDIA driver" in op.name)
    assert first_key < driver_at, "the repository is there before nvlsm is installed"


@pytest.mark.parametrize(("gpu", "pinned", "package"), [
    ("t4", "570", "nvidia-driver-570-server"),
    ("rtx-4090", "570", "nvidia-driver-570"),
    ("a100", "550", "nvidia-driver-550-server"),
])
def test_ubuntu_transitional_branches_are_refused_from_the_archive(gpu, pinned, package):
    """Ubuntu's 570 (and 570-server) became transitional packages to 580, and so did
    550-server: pinned from the archive they would install 580, so the plan says so."""
    case = f"ubuntu-24.04_{gpu}_distro_driver-{pinned}"
    run = run_case(case, host_data("ubuntu-24.04", gpu, "distro",
                                   nvidia_driver_branch=pinned))
    assert run.ops == [] and run.error, run.describe()
    assert f"host @fake/{case}: nvidia_driver_branch:" in run.error, run.error
    assert f"{package} is a transitional package that installs R580" in run.error, run.error
    auto = run_case(f"ubuntu-24.04_{gpu}_distro_auto",
                    host_data("ubuntu-24.04", gpu, "distro"))
    assert auto.stack.driver.branch == "580", auto.describe()


def test_ubuntu_550_geforce_is_not_transitional():
    run = run_case("ubuntu-24.04_rtx-4090_distro_driver-550",
                   host_data("ubuntu-24.04", "rtx-4090", "distro", nvidia_driver_branch="550"))
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == (
        "linux-modules-nvidia-550-generic nvidia-headless-no-dkms-550 nvidia-utils-550")


def test_maxwell_host_gets_tensorflow_on_the_cpu():
    """TensorFlow's wheels carry sm_60/70/80/89 and compute_90 only (.bazelrc): a Tesla M40
    (sm_52) gets tensorflow-cpu, torch a cu126 build (sm_50 in its arch list), the
    proprietary modules (no GSP) and R580 at most."""
    run = run_case("ubuntu-24.04_tesla-m40", host_data("ubuntu-24.04", "tesla-m40", "auto"))
    assert run.error is None, run.error
    stack = run.stack
    assert (stack.driver.branch, stack.driver.flavour) == ("580", "proprietary")
    assert stack.tensorflow.package == "tensorflow-cpu==2.21.0"
    assert (stack.torch.version, stack.torch.variant) == ("2.14.1", "cu126")
    assert any("sm_52" in note and "tensorflow-cpu" in note for note in stack.notes)
    install = " ".join(c for op in run.named("Install the frameworks") for c in op.commands)
    assert "tensorflow-cpu==2.21.0" in install and "and-cuda" not in install, install


def test_multi_gpu_host_holds_nccl_to_the_planned_cuda():
    """NVIDIA's libnccl2 builds are versioned <nccl>+cuda<X.Y>: the plan pins the CUDA 13.0
    build (NCCL install guide: libnccl2=<version>+cuda<X.Y>)."""
    run = run_case("debian-13_h100x8_cuda-repo_nccl",
                   host_data("debian-13", "h100x8", "cuda_repo"))
    assert run.error is None, run.error
    assert run.stack.nccl.apt_pin == "*+cuda13.0"
    pin = run.uploads()[NCCL_PREFERENCES]
    assert pin.splitlines()[1:] == ["Package: libnccl2 libnccl-dev",
                                    "Pin: version *+cuda13.0", "Pin-Priority: 1001"], pin


@pytest.mark.parametrize(("display", "key", "desktop"), [
    (None, "auto", False),
    ("ubuntu-24.04-gdm3", "auto", True),
    ("ubuntu-24.04-gdm3", "headless", False),
    (None, "desktop", True),
], ids=["server", "desktop", "desktop-forced-headless", "server-forced-desktop"])
def test_desktop_keeps_its_display_driver(display, key, desktop):
    """A workstation with a display manager gets Ubuntu's full driver (nvidia-driver-580-open:
    X and Wayland libraries) and nvidia-drm modeset; a server the headless build."""
    case = f"ubuntu-24.04_rtx-4090_{display or 'server'}_{key}"
    run = run_case(case, host_data("ubuntu-24.04", "rtx-4090", "distro",
                                   nvidia_driver_display=key, facts={"display": display}))
    assert run.error is None, run.error
    user_space = "nvidia-driver-580-open" if desktop else "nvidia-headless-no-dkms-580-open"
    assert packages(run, "Install the NVIDIA driver") == (
        f"linux-modules-nvidia-580-open-generic {user_space} nvidia-utils-580")
    assert run.stack.driver.display == ("desktop" if desktop else "headless")
    modeset = run.uploads().get(NVIDIA_DRM_MODESET)
    if desktop:
        assert modeset and "options nvidia-drm modeset=1\n" in modeset, run.describe()
        assert any(note.startswith("desktop driver: ") for note in run.stack.notes)
        [initramfs] = run.named("initramfs")
        assert initramfs.conditional, "rebuilt only when the blacklist or modeset changed"
    else:
        assert modeset is None, run.describe()


# --- proof over time: the burn-in's tools, NVML on GPU hosts, the daily timer -----------------

def test_burn_in_is_installed_with_stress_ng():
    run = run_case("debian-12_no-gpu_burn-in", host_data("debian-12", "no-gpu", "distro"))
    assert packages(run, "Install stress-ng") == "stress-ng", run.describe()
    script = run.uploads()["/opt/dlws/venv/bin/dlws-burn-in"]
    assert script.startswith("#!/opt/dlws/venv/bin/python\n") and "def evaluate(" in script
    [link] = run.named("Link dlws-burn-in to /usr/local/bin/dlws-burn-in")
    assert any("/usr/local/bin/dlws-burn-in" in c for c in link.commands), run.describe()


@pytest.mark.parametrize(("gpu", "nvml"), [("no-gpu", False), ("a100", True)])
def test_nvml_bindings_go_to_gpu_hosts_only(gpu, nvml):
    from dlws.locks import NVML_BINDINGS, environment_spec
    from roles import all_defaults

    data = host_data("ubuntu-24.04", gpu, "distro")
    run = run_case(f"ubuntu-24.04_{gpu}_nvml", data)
    assert run.error is None, run.error
    spec = environment_spec(run.stack, {**all_defaults(), **data})
    assert (NVML_BINDINGS in spec.requirements) is nvml, spec.requirements


def test_daily_check_timer_only_when_asked():
    off = run_case("ubuntu-24.04_t4_no-daily", host_data("ubuntu-24.04", "t4", "distro"))
    assert off.named("daily check") == [] and not any(
        "dlws-daily-check" in path for path in off.uploads()), off.describe()
    data = host_data("ubuntu-24.04", "t4", "distro", frameworks_daily_check=True,
                     frameworks_daily_burn_in_minutes=3, hardware_data_dir="/data/ml-disk")
    run = run_case("ubuntu-24.04_t4_daily", data)
    uploads = run.uploads()
    timer = uploads["/etc/systemd/system/dlws-daily-check.timer"]
    assert "OnCalendar=daily" in timer and "Persistent=true" in timer
    service = uploads["/etc/systemd/system/dlws-daily-check.service"]
    assert "ExecStart=/usr/local/sbin/dlws-daily-check" in service
    script = uploads["/usr/local/sbin/dlws-daily-check"]
    assert ("/usr/local/bin/dlws-burn-in --minutes 3 --gpus 1 --data-dir /data/ml-disk "
            "--json /var/lib/dlws/daily/burn-in.json") in script, script
    assert "--require-gpu" in script
    [enable] = run.named("Enable and start the dlws-daily-check timer")
    assert "systemctl daemon-reload" in enable.commands
    assert any("systemctl enable dlws-daily-check.timer" in c for c in enable.commands), (
        enable.commands)


def test_daily_check_is_skipped_in_a_container():
    data = host_data("debian-12", "no-gpu", "distro", frameworks_daily_check=True,
                     facts={"container": "docker"})
    run = run_case("debian-12_no-gpu_daily-in-container", data)
    assert not any("dlws-daily-check" in path for path in run.uploads()), run.describe()
