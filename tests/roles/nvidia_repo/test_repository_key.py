"""NVIDIA's repository key as the deploy installs it: the real script, keys served over HTTP.

The script roles/nvidia_repo sends to a host runs here, on the controller (as root, like on a
host), against a local HTTP server and a scratch keyring: a served file holding a second key, or
a key with another fingerprint, is refused and the installed keyring stays byte for byte.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from dlws.roles.nvidia_repo import key_install_script, primary_fingerprints

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("gpg") or not shutil.which("curl"),
    reason="the install script needs root (install -o root), gpg and curl")


def _make_key(home: Path, name: str) -> tuple[str, bytes]:
    """A fresh signing key: (fingerprint, armored public key)."""
    env = {**os.environ, "GNUPGHOME": str(home)}
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                    f"{name} <{name}@repo.test>", "ed25519", "sign", "never"],
                   env=env, check=True, capture_output=True)
    colons = subprocess.run(["gpg", "--batch", "--with-colons", "--list-keys"], env=env,
                            check=True, capture_output=True, text=True).stdout
    [fingerprint] = primary_fingerprints(colons)
    armored = subprocess.run(["gpg", "--batch", "--armor", "--export", fingerprint], env=env,
                             check=True, capture_output=True).stdout
    return fingerprint, armored


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Key files on a local HTTP server: the right key, it plus another, and another alone."""
    root = tmp_path_factory.mktemp("repo")
    good, good_key = _make_key(root / "home-good", "nvidia")
    _other, other_key = _make_key(root / "home-other", "intruder")
    www = root / "www"
    www.mkdir()
    (www / "good.pub").write_bytes(good_key)
    (www / "two-keys.pub").write_bytes(good_key + other_key)
    (www / "wrong.pub").write_bytes(other_key)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield good, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _install(url: str, fingerprint: str, keyring: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", key_install_script(url, fingerprint, str(keyring))],
                          capture_output=True, text=True, timeout=60)


def _keyring_keys(keyring: Path) -> list[str]:
    home = keyring.parent / "show-home"
    home.mkdir(mode=0o700, exist_ok=True)
    out = subprocess.run(["gpg", "--batch", "--show-keys", "--with-colons", str(keyring)],
                         env={**os.environ, "GNUPGHOME": str(home)}, capture_output=True,
                         text=True)
    return primary_fingerprints(out.stdout)


def test_the_expected_key_alone_is_installed(served, tmp_path):
    fingerprint, base = served
    keyring = tmp_path / "cuda-archive-keyring.gpg"
    out = _install(base + "good.pub", fingerprint, keyring)
    assert out.returncode == 0, out.stderr
    assert _keyring_keys(keyring) == [fingerprint]
    assert oct(keyring.stat().st_mode & 0o777) == "0o644"


@pytest.mark.parametrize(("served_file", "why"), [("two-keys.pub", "holds 2 primary key(s)"),
                                                  ("wrong.pub", "holds 1 primary key(s), first")])
def test_a_key_file_that_is_not_exactly_the_key_is_refused(served, tmp_path, served_file, why):
    fingerprint, base = served
    keyring = tmp_path / "cuda-archive-keyring.gpg"
    assert _install(base + "good.pub", fingerprint, keyring).returncode == 0
    before = keyring.read_bytes()
    out = _install(base + served_file, fingerprint, keyring)
    assert out.returncode != 0, "the key file was accepted"
    assert why in out.stderr and fingerprint in out.stderr, out.stderr
    assert keyring.read_bytes() == before, "apt's keyring changed"
    assert not list(tmp_path.glob("*.dlws-new")), "a half-installed keyring was left"


def test_a_wrong_fingerprint_leaves_a_missing_keyring_missing(served, tmp_path):
    fingerprint, base = served
    keyring = tmp_path / "cuda-archive-keyring.gpg"
    out = _install(base + "wrong.pub", fingerprint, keyring)
    assert out.returncode != 0 and not keyring.exists(), out.stderr


def test_the_keyring_fact_reads_primary_keys_only():
    colons = ("pub:-:255:22:AAAA:1:::-:::scSC::::::23::0:\n"
              "fpr:::::::::EB693B3035CD5710E231E123A4B469963BF863CC:\n"
              "uid:-::::1::X::NVIDIA <x@nvidia.com>::::::::::0:\n"
              "sub:-:255:18:BBBB:1::::::e::::::23:\n"
              "fpr:::::::::1111111111111111111111111111111111111111:\n"
              "pub:-:255:22:CCCC:1:::-:::scSC::::::23::0:\n"
              "fpr:::::::::2222222222222222222222222222222222222222:\n")
    assert primary_fingerprints(colons) == ["EB693B3035CD5710E231E123A4B469963BF863CC",
                                            "2222222222222222222222222222222222222222"]
