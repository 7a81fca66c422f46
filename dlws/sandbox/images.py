"""Base images for sandbox and test containers: pulled if a registry answers, else built offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

# The image each supported Debian suite is tagged as locally. Ubuntu has no offline build here:
# Ubuntu's archive is not reachable from this project's machines (see molecule/ubuntu-*).
SUITES = {"bookworm": "12", "trixie": "13"}
LOCAL_TAG = "dlws/debian:{suite}"
# Foreign architectures: Debian's name (debootstrap --arch), Docker's platform, the tag's suffix
# and the qemu-user-static handler that runs its binaries on this machine's CPU.
FOREIGN_ARCHES = {"arm64": ("linux/arm64", "qemu-aarch64")}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d")
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


def native_arch() -> str:
    """This machine's Debian architecture (`dpkg --print-architecture`: amd64, arm64)."""
    return subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()


def register_binfmt(arch: str, log=print) -> None:
    """Let this kernel run `arch` binaries (containers included) through qemu-user-static.

    Debian's qemu-user-static ships one binfmt_misc line per architecture in
    /usr/lib/binfmt.d/<handler>.conf; its flags (POF: preserve argv0, open the binary,
    fix the interpreter at registration) let a container's binaries use this machine's
    interpreter. binfmt_misc is mounted first where it is not (harmless when it is).
    """
    handler = FOREIGN_ARCHES[arch][1]
    conf = BINFMT_CONF / f"{handler}.conf"
    if not conf.exists():
        raise SystemExit(f"{conf} is missing: install Debian's qemu-user-static "
                         "(`apt-get install qemu-user-static`, root) to run "
                         f"{arch} containers here")
    if not (BINFMT_DIR / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                       check=True)
    entry = BINFMT_DIR / handler
    if entry.exists():
        if entry.read_text().splitlines()[0] == "enabled":
            return
        entry.write_text("1")  # registered and disabled: enable it
        return
    line = next(raw for raw in conf.read_text().splitlines()
                if raw.strip() and not raw.startswith("#"))
    (BINFMT_DIR / "register").write_text(line)
    log(f"registered the {handler} binfmt handler from {conf}")


def ensure_debian_image(suite: str, log=print, arch: str | None = None) -> str:
    """A local tag for a bare Debian `suite` image: pulled if possible, else debootstrapped.

    + arch: a Debian architecture other than this machine's ("arm64"): the image is built for
      it (with python3, which the emulated first run needs anyway) and runs under
      qemu-user-static; its tag is dlws/debian:<suite>-<arch>
    """
    if suite not in SUITES:
        raise ValueError(f"unsupported suite {suite!r}; supported: {', '.join(SUITES)}")
    if arch is not None and arch == native_arch():
        arch = None
    if arch is not None:
        return _foreign_image(suite, arch, log)
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


# (The tag names what the image holds: an image committed before sudo was added is not reused.)
SSHD_TAG = "dlws/sshd-sudo:{suite}"


def ensure_sshd_image(suite: str = "bookworm", log=print) -> str:
    """A local tag for bare Debian `suite` with openssh-server and sudo from Debian's archive,
    committed once: the SSH hosts of the fleet benchmark and of the SSH session tests (sudo for
    verify's `_sudo_password` hosts)."""
    tag = SSHD_TAG.format(suite=suite)
    if image_exists(tag):
        return tag
    base = ensure_debian_image(suite, log)
    name = f"dlws-sshd-build-{uuid.uuid4().hex[:8]}"
    _docker("run", "-d", "--name", name, base, "sleep", "infinity")
    try:
        _docker("exec", "-e", "DEBIAN_FRONTEND=noninteractive", name, "sh", "-c",
                "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                "openssh-server sudo >/dev/null && rm -rf /var/lib/apt/lists/*")
        _docker("commit", name, tag)
    finally:
        _docker("rm", "-f", name, check=False)
    log(f"built {tag}")
    return tag


def _foreign_image(suite: str, arch: str, log=print) -> str:
    """dlws/debian:<suite>-<arch>: pulled for its platform, else debootstrapped for `arch`."""
    if arch not in FOREIGN_ARCHES:
        raise ValueError(f"unsupported architecture {arch!r}; supported: "
                         f"{', '.join(FOREIGN_ARCHES)}")
    platform = FOREIGN_ARCHES[arch][0]
    register_binfmt(arch, log)
    tag = f"{LOCAL_TAG.format(suite=suite)}-{arch}"
    if image_exists(tag):
        return tag
    pulled = _docker("pull", "--platform", platform, f"debian:{suite}", check=False)
    if pulled.returncode == 0:
        _docker("tag", f"debian:{suite}", tag)
        log(f"pulled debian:{suite} ({platform}) as {tag}")
        return tag
    if shutil.which("debootstrap") is None:
        raise SystemExit(f"No registry answered for debian:{suite} ({platform}) and debootstrap "
                         "is not installed: `apt-get install debootstrap` (root)")
    mirror = host_debian_mirror()
    log(f"no registry answered; building {tag} with debootstrap --arch={arch} from {mirror} "
        "(the second stage runs under emulation)")
    with tempfile.TemporaryDirectory(prefix=f"dlws-{suite}-{arch}-", dir="/var/tmp") as root:
        subprocess.run(["debootstrap", f"--arch={arch}", "--variant=minbase",
                        "--include=python3", suite, root, mirror],
                       check=True, stdout=subprocess.DEVNULL)
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        # Docker 20.10 (Debian 12's) accepts --platform here but labels the image with this
        # machine's architecture; its binaries run through the binfmt handler either way.
        subprocess.run(["docker", "import", "--platform", platform,
                        "--change", 'CMD ["sleep", "infinity"]', "-", tag],
                       stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise SystemExit(f"tar of the {suite} {arch} root failed")
    log(f"built {tag}")
    return tag


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:] or ["bookworm"]:
        suite, _, arch = name.partition(":")  # "bookworm:arm64"
        print(ensure_debian_image(suite, arch=arch or None))
