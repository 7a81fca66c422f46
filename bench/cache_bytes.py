"""Bytes fetched upstream by 1 and 4 fresh hosts (the workstation without frameworks: base, uv,
numpy, mlxtend), with and without the fleet cache (apt-cacher-ng container + a shared pip/uv
download cache). Prints figures only.

    .venv/bin/python bench/cache_bytes.py [--hosts 1 4]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess

from common import MINIMAL, WORK, deploy, inventory, mib, net_bytes, remove, sh, start

CACHE = "dlws-bench-cache"
SHARED = "/var/cache/dlws-pip"  # where the controller's shared cache folder is mounted


def start_cache() -> str:
    start([CACHE])
    seconds, rc, _, log = deploy(inventory(WORK / "cache.py", [CACHE], {}), "roles/cache/serve.py")
    if rc != 0:
        raise SystemExit(f"the cache did not start:\n{log}")
    ip = subprocess.run(["docker", "inspect", "-f",
                         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", CACHE],
                        capture_output=True, text=True, check=True).stdout.strip()
    print(f"cache {CACHE} at http://{ip}:3142 (set up in {seconds:.0f} s)", flush=True)
    return f"http://{ip}:3142"


def cold_cache() -> None:
    sh(CACHE, "/etc/init.d/apt-cacher-ng stop >/dev/null; rm -rf /var/cache/apt-cacher-ng/* "
              "/var/log/apt-cacher-ng/*; /etc/init.d/apt-cacher-ng start >/dev/null")


def run(count: int, proxy: str | None) -> None:
    names = [f"dlws-bench-c{i}" for i in range(count)]
    data = dict(MINIMAL)
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
    seconds, rc, _, log = deploy(inventory(WORK / f"c{count}.py", names, data))
    if rc != 0:
        raise SystemExit(f"the deploy failed:\n{log}")
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
    print(f"{count} host(s) {label}: upstream {mib(upstream)} in {seconds:.0f} s ({detail})",
          flush=True)
    remove(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    proxy = start_cache()
    try:
        for count in args.hosts:
            run(count, None)
            run(count, proxy)
    finally:
        remove([CACHE])


if __name__ == "__main__":
    main()
