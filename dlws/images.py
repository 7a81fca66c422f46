"""Base images for sandbox and test containers: pulled if a registry answers, else built offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# The image each supported Debian suite is tagged as locally. Ubuntu has no offline build here:
# Ubuntu's archive is not reachable from this project's machines (see molecule/ubuntu-*).
SUITES = {"bookworm": "12", "trixie": "13"}
LOCAL_TAG = "dlws/debian:{suite}"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
_SOURCES_GLOBS = (
    "/etc/apt/sources.list.d/*.sources",
    "/etc/apt/sources.list.d/*.list",
    "/etc/apt/sources.list",
)
_ONE_LINE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+.*\bmain\b")


def _docker(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=capture, text=True)


def image_exists(tag: str) -> bool:
    return _docker("image", "inspect", tag, check=False).returncode == 0


def host_debian_mirror() -> str:
    """The Debian mirror this machine's own apt sources use, so builds follow the local setup."""
    for pattern in _SOURCES_GLOBS:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            text = path.read_text(errors="replace")
            if path.suffix == ".sources":
                for stanza in text.split("\n\n"):
                    uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                    suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                    if (uris and suites and "security" not in uris.group(1)
                            and re.search(r"\b(bookworm|trixie|stable|testing|sid)\b",
                                          suites.group(1))):
                        return uris.group(1)
            else:
                for line in text.splitlines():
                    match = _ONE_LINE.match(line)
                    if match and "security" not in match.group(1) and "debian" in match.group(1):
                        return match.group(1)
    return FALLBACK_MIRROR


def ensure_debian_image(suite: str, log=print) -> str:
    """A local tag for a bare Debian `suite` image: pulled if possible, else debootstrapped."""
    if suite not in SUITES:
        raise ValueError(f"unsupported suite {suite!r}; supported: {', '.join(SUITES)}")
    tag = LOCAL_TAG.format(suite=suite)
    if image_exists(tag):
        return tag
    pulled = _docker("pull", f"debian:{suite}", check=False)
    if pulled.returncode == 0:
        _docker("tag", f"debian:{suite}", tag)
        log(f"pulled debian:{suite} as {tag}")
        return tag
    if shutil.which("debootstrap") is None:
        raise SystemExit(
            f"No registry answered for debian:{suite} and debootstrap is not installed: "
            "install it with `apt-get install debootstrap` (root), or make a registry reachable."
        )
    mirror = host_debian_mirror()
    log(f"no registry answered; building {tag} with debootstrap from {mirror}")
    with tempfile.TemporaryDirectory(prefix=f"dlws-{suite}-", dir="/var/tmp") as root:
        subprocess.run(
            ["debootstrap", "--variant=minbase", suite, root, mirror],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "--change", 'CMD ["sleep", "infinity"]', "-", tag],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise SystemExit(f"tar of the {suite} root failed")
    log(f"built {tag}")
    return tag


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:] or ["bookworm"]:
        print(ensure_debian_image(name))
