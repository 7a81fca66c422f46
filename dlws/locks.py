"""Hash locks: what pip and uv install on a host, each file pinned by its sha256.

A lock is made on the controller by `bin/dlws lock` (``uv pip compile --generate-hashes`` for the
host's Python, CPU architecture and package indexes) and kept in ``locks/`` beside the inventory,
where it is reviewed and committed like any other change. The deploy uploads it and installs with
``--require-hashes --no-deps``: a wheel whose sha256 is not in the lock, from any index, mirror,
proxy or wheelhouse, stops the install. A host whose lock is missing is refused before anything
changes on any host.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from dlws.facts.python import canonical
from dlws.stack.locks import PLATFORMS, LockSpec
from dlws.validate.domains import netrc_text, split_credentials
from dlws.validate.secrets import redact

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)")


class LockError(Exception):
    """A lock could not be made (no network, a pin that does not exist, ...)."""


def pins(path: Path) -> list[str]:
    """The ``name==version`` lines of a lock, in its order."""
    found = []
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found.append(f"{match['name']}=={match['version']}")
    return found


def index_options(index_url: str | None, extra_index_urls, find_links: str | None = None,
                  uv: bool = True) -> list[str]:
    """pip/uv options naming where packages come from (uv: the best match across indexes).

    Credentials are left out (a command line is visible to every local user): pip and uv take
    them from the netrc file NETRC names (dlws.validate.domains.netrc_text).
    """
    options = ["--index-url", split_credentials(index_url)[0]] if index_url else []
    for extra in extra_index_urls:
        options += ["--extra-index-url", split_credentials(extra)[0]]
    if uv and len([index_url, *extra_index_urls]) > 1:
        options.append("--index-strategy=unsafe-best-match")
    return options + (["--find-links", find_links] if find_links else [])


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    return str(uv) if uv.exists() else "uv"


def _compile(spec: LockSpec, requirements: tuple[str, ...], no_deps: bool) -> str:
    command = [_uv(), "pip", "compile", "-", "--generate-hashes", "--no-header", "--quiet",
               "--no-annotate"]
    if spec.python:
        command += ["--python-version", spec.python, "--python-platform", PLATFORMS[spec.arch]]
    else:
        command.append("--universal")
    command += index_options(spec.index_url, spec.extra_index_urls, spec.find_links)
    if no_deps:
        command.append("--no-deps")
    with tempfile.TemporaryDirectory(prefix="dlws-lock-") as private:  # mode 0700
        netrc = Path(private) / "netrc"
        netrc.write_text(netrc_text([u for u in (spec.index_url, *spec.extra_index_urls) if u]))
        netrc.chmod(0o600)
        done = subprocess.run(command, input="\n".join(requirements) + "\n",
                              capture_output=True, text=True,
                              env={**os.environ, "NETRC": str(netrc)})
    if done.returncode != 0:
        raise LockError(f"uv pip compile failed for {spec.summary()}:\n"
                        f"{redact(done.stderr.strip())}")
    return done.stdout


def make_lock(spec: LockSpec) -> Path:
    """Resolve `spec` now (network), and write its lock into locks/."""
    if spec.arch and spec.arch not in PLATFORMS:
        raise LockError(f"no wheel platform known for CPU architecture {spec.arch!r} "
                        f"(known: {', '.join(PLATFORMS)})")
    body = _compile(spec, spec.requirements, no_deps=False)
    if spec.no_deps:
        body += _compile(spec, spec.no_deps, no_deps=True)
    sources = [spec.index_url or "https://pypi.org/simple", *spec.extra_index_urls]
    header = [
        "# dlws hash lock: the deploy installs exactly these, each file checked against a sha256.",
        "# Made by `bin/dlws lock` (uv pip compile --generate-hashes); review and commit it.",
        f"# for: {spec.summary()}",
        f"# indexes: {' '.join(sources)}"
        + (f" (made with the wheelhouse {spec.find_links})" if spec.find_links else ""),
    ]
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    spec.path.write_text(redact("\n".join(header)) + "\n" + body)
    return spec.path


# What `python3 -m venv` puts in an environment before any install (ensurepip): not in a lock.
VENV_SEED = frozenset({"pip", "setuptools"})


def unlocked_packages(installed: dict[str, str], locks: list[Path]) -> list[str]:
    """Distributions installed beside the locks: ``name version`` of each one no lock pins."""
    pinned = {canonical(pin.split("==")[0]) for lock in locks for pin in pins(lock)}
    return sorted(f"{name} {version}" for name, version in installed.items()
                  if canonical(name) not in pinned and canonical(name) not in VENV_SEED)
