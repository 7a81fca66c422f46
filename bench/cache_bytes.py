"""Bytes fetched upstream, and the first deploy's time, by 1 and N fresh hosts, with and without
the fleet cache (apt-cacher-ng container + a shared pip/uv download cache). Prints figures only.

The workstation without frameworks (base, uv, numpy, mlxtend), or with --frameworks the whole
sandbox workstation (inventory/group_data/sandbox.py's data: tensorflow-cpu from PyPI, the torch
CPU wheel from the controller's wheelhouse, which reaches the hosts by `docker cp`, not over the
network). --no-baseline skips the runs without the cache.

    .venv/bin/python bench/cache_bytes.py [--hosts 1 4] [--frameworks] [--no-baseline]
                                          [--prefix dlws-bench]
"""

from __future__ import annotations

import argparse
import shutil

from common import (
    MINIMAL,
    WORK,
    container_cpu,
    controller_cpu,
    deploy,
    inventory,
    mib,
    net_bytes,
    remove,
    sh,
    start,
)

from dlws.sandbox.data import controller_data
from dlws.sandbox.docker_env import container_ip

PREFIX = ["dlws-bench"]
# Where the controller's shared cache folder is mounted: a folder of dlws's own below
# /var/cache/dlws (the inventory check refuses a system folder such as /var/cache/NAME).
SHARED = "/var/cache/dlws/pip"


def cache_name() -> str:
    return f"{PREFIX[0]}-cache"


def start_cache() -> str:
    CACHE = cache_name()
    start([CACHE])
    seconds, rc, _, log = deploy(inventory(WORK / "cache.py", [CACHE], {}), "roles/cache/serve.py")
    if rc != 0:
        raise SystemExit(f"the cache did not start:\n{log}")
    ip = container_ip(CACHE)
    print(f"cache {CACHE} at http://{ip}:3142 (set up in {seconds:.0f} s)", flush=True)
    return f"http://{ip}:3142"


def cold_cache() -> None:
    sh(cache_name(), "/etc/init.d/apt-cacher-ng stop >/dev/null; rm -rf /var/cache/apt-cacher-ng/* "
              "/var/log/apt-cacher-ng/*; /etc/init.d/apt-cacher-ng start >/dev/null")


def run(count: int, proxy: str | None, frameworks: bool) -> tuple[float, int, float]:
    """(seconds of the first deploy, bytes fetched upstream, CPU seconds of the hosts and the
    controller's pyinfra together)."""
    CACHE = cache_name()
    names = [f"{PREFIX[0]}-c{i}" for i in range(count)]
    data = {**controller_data(), "hardware_min_memory_gib": 1} if frameworks else dict(MINIMAL)
    volumes = {}
    if proxy:
        cold_cache()
        shared = WORK / "pip-cache"
        shutil.rmtree(shared, ignore_errors=True)
        shared.mkdir(parents=True)
        volumes = {str(shared): SHARED}
        data.update(cache_apt_proxy=proxy, cache_pip_dir=SHARED)
    start(names, volumes)
    before_cache = net_bytes(CACHE) if proxy else (0, 0)
    cpu_before = sum(container_cpu(name) or 0.0 for name in names) + controller_cpu()
    seconds, rc, _, log = deploy(inventory(WORK / f"c{count}.py", names, data))
    if rc != 0:
        raise SystemExit(f"the deploy failed:\n{log}")
    cpu = sum(container_cpu(name) or 0.0 for name in names) + controller_cpu() - cpu_before
    hosts_rx = sum(net_bytes(name)[0] for name in names)
    if proxy:
        cache_rx, cache_tx = (a - b for a, b in zip(net_bytes(CACHE), before_cache, strict=True))
        upstream = hosts_rx - cache_tx + cache_rx
        detail = (f"cache received {mib(cache_rx)}, sent {mib(cache_tx)}; hosts received "
                  f"{mib(hosts_rx)}, {mib(hosts_rx - cache_tx)} of it not from the apt cache "
                  "(PyPI)")
    else:
        upstream, detail = hosts_rx, f"hosts received {mib(hosts_rx)}"
    label = "with cache" if proxy else "no cache  "
    print(f"{count} host(s) {label}: upstream {mib(upstream)} in {seconds:.0f} s, CPU "
          f"{cpu:.0f} s ({detail})", flush=True)
    remove(names)
    return seconds, upstream, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--frameworks", action="store_true",
                        help="the whole sandbox workstation, TensorFlow and PyTorch included")
    parser.add_argument("--no-baseline", action="store_true", help="only the runs with the cache")
    parser.add_argument("--prefix", default="dlws-bench")
    args = parser.parse_args()
    PREFIX[0] = args.prefix
    proxy = start_cache()
    cached = {}
    try:
        for count in args.hosts:
            if not args.no_baseline:
                run(count, None, args.frameworks)
            cached[count] = run(count, proxy, args.frameworks)
        if 1 in cached:
            one_s, one_b, _ = cached[1]
            for count, (seconds, upstream, _) in cached.items():
                if count != 1:
                    print(f"with the cache, {count} hosts / 1 host: first deploy "
                          f"{seconds / one_s:.2f}x, upstream bytes {upstream / one_b:.2f}x")
    finally:
        remove([f"{args.prefix}-c{i}" for i in range(max(args.hosts))] + [cache_name()])


if __name__ == "__main__":
    main()
