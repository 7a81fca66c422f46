"""Secrets and hostile values on a real container: a credentialed proxy and index, served here.

The deploy and verify run against a bare Debian 12 container whose apt and pip go through a
proxy that wants a password and an index that wants a token (tests/credentialed_servers.py, on
the Docker bridge). Afterwards every file the deploy wrote, every report, pyinfra's output and
the process list sampled during the install are searched for both secrets: they may appear only
in the root-only files meant for them. Before that, an inventory giving every string key a
hostile value is refused, and its marker file never appears.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dlws.roles.base import APT_PROXY_FILE, PROXY_ENV_FILE
from dlws.roles.python_env import NETRC
from dlws.sandbox.data import CONTROLLER_BUNDLE
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from tests.credentialed_servers import make_tls, start_index, start_proxy
from tests.helpers import BIN, ROOT

pytestmark = pytest.mark.integration
NAME = "dlws-i11-secrets"
PROXY_SECRET = "pr0xy-Pa55word-7f3a"
INDEX_SECRET = "1ndex-T0ken-9c1e"
SECRETS = (PROXY_SECRET, INDEX_SECRET)
# The only files a secret may be in: root-owned, not world-readable.
ALLOWED = {APT_PROXY_FILE, PROXY_ENV_FILE, NETRC}
MARKER = "/tmp/dlws-injected"


def bridge_gateway() -> str:
    out = subprocess.run(["docker", "network", "inspect", "bridge", "--format",
                          "{{(index .IPAM.Config 0).Gateway}}"], capture_output=True, text=True)
    return out.stdout.strip() or "172.17.0.1"


def dexec(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", NAME, "sh", "-c", script], capture_output=True,
                          text=True)


def write_inventory(folder: Path, data: dict) -> Path:
    inventory = folder / "secrets.py"
    inventory.write_text(f"hosts = [('@docker/{NAME}', {data!r})]\n")
    return inventory


@pytest.fixture(scope="module")
def servers(docker_engine, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    gateway = bridge_gateway()
    ca, cert, key = make_tls(folder, gateway)
    proxy, proxy_port, proxy_counts = start_proxy(gateway, "bob", PROXY_SECRET)
    index, index_port, index_counts = start_index(gateway, "alice", INDEX_SECRET, cert, key)
    remove_container(NAME)
    yield {"gateway": gateway, "ca": ca, "proxy": f"http://bob:{PROXY_SECRET}@{gateway}:"
           f"{proxy_port}", "index": f"https://alice:{INDEX_SECRET}@{gateway}:{index_port}/simple",
           "proxy_counts": proxy_counts, "index_counts": index_counts}
    proxy.shutdown()
    index.shutdown()
    remove_container(NAME)


def _data(servers) -> dict:
    return {
        "base_extra_ca_certs": [CONTROLLER_BUNDLE, str(servers["ca"])],
        "base_http_proxy": servers["proxy"],
        "base_https_proxy": servers["proxy"],
        "python_env_index_url": servers["index"],
        "python_env_installer": "pip",
        "python_env_require_hashes": False,
        "frameworks_tensorflow": "none",
        "frameworks_torch": "none",
        "verify_frameworks": [],
        "verify_offline": True,
        "base_lab_users": ["carol"],
    }


def _pyinfra(inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pyinfra"), "-y", "--json", str(inventory),
                           "deploy/workstation.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def test_hostile_values_are_refused_and_never_run(servers, tmp_path):
    from dlws.roles import all_defaults, all_keys

    remove_container(NAME)
    ensure_container(NAME, ensure_debian_image("bookworm"))
    payloads = [f";touch {MARKER}", f"$(touch {MARKER})", f"`touch {MARKER}`", "'\"",
                f"\ntouch {MARKER}"]
    defaults = all_defaults()
    for payload in payloads:
        data = {}
        for key in all_keys():
            base = defaults[key.name]
            if key.types == (list,):
                data[key.name] = [f"{base[0] if base else 'x'}{payload}"]
            elif str in key.types:
                data[key.name] = f"{base or 'x'}{payload}"
        out = _pyinfra(write_inventory(tmp_path, data))
        text = out.stdout + out.stderr
        assert out.returncode != 0 and "Traceback" not in text, text[-3000:]
        assert "problem(s); nothing was changed on any host" in text, text[-3000:]
        assert dexec(f"test -e {MARKER}").returncode != 0, f"{MARKER} appeared"
    assert not Path(MARKER).exists(), f"{MARKER} appeared on the controller"


def _sample_processes(stop: threading.Event, seen: list[str]) -> None:
    script = ('for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done')
    while not stop.is_set():
        seen.extend(line for line in dexec(script).stdout.splitlines() if line.strip())
        time.sleep(0.3)


def test_secrets_stay_in_their_root_only_files(servers, tmp_path):
    remove_container(NAME)
    ensure_container(NAME, ensure_debian_image("bookworm"))
    assert dexec("touch /dlws-before-deploy").returncode == 0
    inventory = write_inventory(tmp_path, _data(servers))
    seen: list[str] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_processes, args=(stop, seen), daemon=True)
    sampler.start()
    try:
        deploy = _pyinfra(inventory)
    finally:
        stop.set()
        sampler.join(timeout=30)
    assert deploy.returncode == 0, deploy.stderr[-4000:]
    run_dir = tmp_path / "report"
    verify = subprocess.run([str(BIN / "dlws"), "verify", "--inventory", str(inventory),
                             "--run-dir", str(run_dir)], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env={**os.environ})
    # The servers were really used, with the credentials.
    assert servers["proxy_counts"].served > 0, "apt/pip never went through the proxy"
    assert servers["index_counts"].served > 0, "pip never asked the credentialed index"
    assert any(" install " in line and "pip" in line for line in seen), (
        "the process sampler never saw pip's install")
    leaks = []
    for secret in SECRETS:
        for line in seen:
            if secret in line:
                leaks.append(f"process list: {line[:300]}")
        for what, text in (("pyinfra --json", deploy.stdout), ("pyinfra log", deploy.stderr),
                           ("dlws verify output", verify.stdout + verify.stderr)):
            if secret in text:
                leaks.append(what)
        for path in run_dir.rglob("*"):
            if path.is_file() and secret in path.read_text(errors="replace"):
                leaks.append(f"report {path.name}")
    # Every file the deploy wrote or changed in the container.
    found = dexec("find / -xdev -type f -newer /dlws-before-deploy 2>/dev/null | "
                  f"xargs -r grep -lF -e {PROXY_SECRET} -e {INDEX_SECRET} 2>/dev/null | "
                  "while read f; do stat -c '%U %G %a %n' \"$f\"; done").stdout.splitlines()
    for line in found:
        user, group, mode, path = line.split(" ", 3)
        if path not in ALLOWED:
            leaks.append(f"{path} ({user}:{group} {mode})")
        elif user != "root" or int(mode, 8) & 0o007:
            leaks.append(f"{path} is {user}:{group} {mode}: others can read it")
    assert not leaks, "secrets found outside their root-only files:\n" + "\n".join(leaks)
    assert {line.split(" ", 3)[3] for line in found} == ALLOWED, found
    assert verify.returncode == 0, (verify.stdout + verify.stderr)[-5000:]
    document = json.loads((run_dir / "report.json").read_text())
    assert document, "verify wrote an empty report"
