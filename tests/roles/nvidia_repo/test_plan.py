"""roles/nvidia_repo at the plan level: where the driver comes from, the cache, each path's key."""

from __future__ import annotations

from dlws.roles import nvidia_repo
from tests.fake_hosts import facts
from tests.plan.cases import (
    host_data,
    run_case,
)


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
    from dlws.roles import cache
    from dlws.roles.base import APT_PROXY_FILE

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


# A GH200 as `lspci -nn` names it on a Grace Hopper host (constructed from pci.ids' name for
# 10de:2342 and a Grace PCI domain; no such host was at hand).
GH200 = "gh200"


def test_arm64_host_takes_the_sbsa_path_of_nvidia_repository():
    """An arm64 Debian 12 GH200 host (uname -m aarch64, dpkg arm64): NVIDIA's repository from
    its sbsa folder, with the same path's key, and the open modules R580 from there."""
    data = {"gpu_count": 1, "gpu_model": "NVIDIA GH200 480GB", "python_env_require_hashes": False,
            "fake_responses": facts("debian-12", GH200, machine="aarch64")}
    run = run_case("debian-12_gh200_arm64", data)
    assert run.error is None, run.error
    url = "https://developer.download.nvidia.com/compute/cuda/repos/debian12/sbsa/"
    assert f"URIs: {url}\n" in run.uploads()[nvidia_repo.SOURCES]
    [key] = run.named("Install NVIDIA's repository key")
    assert f"-- {url}3bf863cc.pub; " in key.commands[0], key.commands
    assert "x86_64" not in " ".join(run.commands()), run.describe()
    installs = " ".join(" ".join(i) for i in run.apt_installs())
    assert "nvidia-driver-pinning-580" in installs and "nvidia-open" in installs, installs


def test_arm_only_gpu_on_an_x86_64_host_is_refused_before_any_operation():
    data = {"gpu_count": 1, "gpu_model": "NVIDIA GH200 480GB", "python_env_require_hashes": False,
            "fake_responses": facts("debian-12", GH200)}
    run = run_case("debian-12_gh200_x86_64", data)
    assert run.error and "exists only in aarch64 (Arm) systems" in run.error, run.describe()
    assert "x86_64 (uname -m)" in run.error and not run.ops
