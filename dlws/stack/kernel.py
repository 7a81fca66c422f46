"""Kernel updates: which headers let DKMS build the NVIDIA module for every new kernel."""

from __future__ import annotations

import re
from dataclasses import dataclass

# `uname -r`: Debian "6.1.0-28-amd64", "6.1.0-28-cloud-amd64", "6.12.48+deb13-amd64",
# "6.12.12+bpo-amd64"; Ubuntu "6.8.0-51-generic", "6.8.0-1015-aws". The flavour follows the
# release (and ABI, and Debian's +debNN/+bpo tag).
KERNEL_RELEASE = re.compile(
    r"^(?P<version>(?P<series>\d+\.\d+)(?:\.\d+)?(?:-\d+)?(?:\+(?P<tag>[a-z0-9]+))?)"
    r"-(?P<flavour>[a-z0-9][a-z0-9-]*)$")
# A linux-image metapackage (follows new kernels), not a kernel of its own: linux-image-amd64,
# linux-image-generic-hwe-22.04, linux-image-aws; not linux-image-6.1.0-28-amd64.
IMAGE_METAPACKAGE = re.compile(r"^linux-image-(?P<suffix>(?!\d)(?!unsigned-)(?!extra-)[a-z].*)$")
# The kernel series each Ubuntu release ships as its GA kernel: another series of the generic
# flavours is an HWE kernel (https://ubuntu.com/kernel/lifecycle).
UBUNTU_GA_KERNELS = {"22.04": "5.15", "24.04": "6.8"}
UBUNTU_HWE_FLAVOURS = ("generic", "lowlatency", "generic-64k")

# Headers metapackages whose names were read from a primary source: Debian's with
# `apt-cache policy` against Debian's archive (bookworm, amd64, 2026-11-29); Ubuntu's on
# packages.ubuntu.com (linux-headers-generic-hwe-24.04, "Similar packages" linux-headers-generic
# and linux-headers-generic-hwe-22.04; linux-headers-aws in jammy and noble). Any other name
# (arm64, azure, gcp, lowlatency...) is derived the same way and marked unverified in the plan.
VERIFIED_HEADERS = {
    ("debian", "linux-headers-amd64"), ("debian", "linux-headers-cloud-amd64"),
    ("debian", "linux-headers-rt-amd64"),
    ("ubuntu", "linux-headers-generic"), ("ubuntu", "linux-headers-generic-hwe-22.04"),
    ("ubuntu", "linux-headers-generic-hwe-24.04"), ("ubuntu", "linux-headers-aws"),
}


@dataclass(frozen=True)
class Headers:
    """The headers a host gets so that DKMS builds its module for this and every next kernel."""

    packages: tuple[str, ...]  # what apt installs: the running kernel's, then the metapackage
    metapackage: str | None  # follows kernel updates; None when none could be told
    basis: str  # how the metapackage was chosen, for the plan's reader
    verified: bool  # the metapackage's name was checked against the archive


def kernel_flavour(kernel_release: str) -> str | None:
    match = KERNEL_RELEASE.match(kernel_release.strip())
    return match["flavour"] if match else None


def headers_for(os_id: str, os_release: str, kernel_release: str | None,
                images: list[str]) -> Headers:
    """The running kernel's headers and the metapackage of its flavour.

    The metapackage comes from the installed linux-image metapackage that matches the running
    kernel's flavour (linux-image-cloud-amd64 -> linux-headers-cloud-amd64,
    linux-image-generic-hwe-22.04 -> linux-headers-generic-hwe-22.04); with none installed it
    is derived from `uname -r` alone, and the plan says so.
    """
    kernel_release = (kernel_release or "").strip()
    if not kernel_release:
        return Headers((), None, "the running kernel's release could not be read", False)
    running = f"linux-headers-{kernel_release}"
    match = KERNEL_RELEASE.match(kernel_release)
    if not match:
        return Headers((running,), None, f"kernel release {kernel_release!r} not understood: "
                       "only the running kernel's headers", False)
    flavour = match["flavour"]
    suffixes = [m["suffix"] for m in map(IMAGE_METAPACKAGE.match, images) if m]
    derived = flavour
    if os_id == "ubuntu":
        ga = UBUNTU_GA_KERNELS.get(os_release)
        if ga and flavour in UBUNTU_HWE_FLAVOURS and match["series"] != ga:
            derived = f"{flavour}-hwe-{os_release}"
    # Ubuntu's "virtual" metapackages boot the generic kernel.
    follows = {flavour, derived}
    if os_id == "ubuntu" and flavour == "generic":
        follows |= {s.replace("generic", "virtual", 1) for s in (flavour, derived)}
    candidates = [s for s in suffixes if s in follows]
    if candidates:
        # The HWE one where the running kernel is HWE, else the GA one.
        suffix = derived if derived in candidates else sorted(candidates)[0]
        basis = f"follows the installed linux-image-{suffix}"
    else:
        suffix = derived
        basis = (f"derived from uname -r {kernel_release.strip()!r}: no linux-image metapackage "
                 f"of flavour {flavour!r} is installed, so new kernels come only if one is "
                 f"(apt install linux-image-{suffix})")
    if match["tag"] == "bpo":
        # A backports kernel's headers metapackage must come from <codename>-backports too
        # (apt -t); the plan says so rather than pulling the stable suite's older headers.
        basis += ("; a backports kernel: pin linux-image/linux-headers metapackages to "
                  "<codename>-backports (apt_preferences) so both follow it")
    metapackage = f"linux-headers-{suffix}"
    return Headers((running, metapackage), metapackage, basis,
                   (os_id, metapackage) in VERIFIED_HEADERS)


# `dkms status` lines: "nvidia-current/535.216.01, 6.1.0-28-amd64, x86_64: installed" (dkms 3)
# and "nvidia, 580.95.05, 6.8.0-51-generic, x86_64: installed" (dkms 2).
DKMS_STATUS = re.compile(
    r"^(?P<module>[^/,\s]+)(?:/|, )(?P<version>[^,\s]+), (?P<kernel>[^,\s]+)"
    r"(?:, (?P<arch>[^:\s]+))?: (?P<state>\w+)")


def dkms_status(text: str) -> list[dict]:
    """Parse `dkms status`: one dict per module, version and kernel."""
    out = []
    for line in text.splitlines():
        match = DKMS_STATUS.match(line.strip())
        if match:
            out.append({key: match[key] for key in ("module", "version", "kernel", "state")})
    return out


def newest_kernel(vmlinuz: list[str]) -> str | None:
    """The kernel GRUB boots by default (GRUB_DEFAULT=0: the newest, as update-grub sorts
    with `linux-version sort`), from /boot/vmlinuz-* names."""
    releases = [name.rsplit("/", 1)[-1].removeprefix("vmlinuz-") for name in vmlinuz]
    releases = [r for r in releases if r and not r.endswith((".old", ".bak"))]
    return max(releases, key=_version_key) if releases else None


def _version_key(release: str) -> tuple:
    # "6.1.0-28-amd64" -> (6, 1, 0, 28): numbers compare as numbers ("-9" < "-28").
    return tuple(int(n) for n in re.findall(r"\d+", release.split("+")[0].rsplit("-", 1)[0]))


def module_problems(kernels: dict[str, str], modules: dict[str, str | None], branch: str,
                    flavour: str | None, licenses: dict[str, str] | None = None,
                    fix: str = "") -> list[str]:
    """Kernels that lack an NVIDIA module of the planned branch (and flavour), with the fix.

    + kernels: kernel release -> why it is checked ("running", "default boot", ...)
    + modules: kernel release -> the module version modinfo -k finds there, or None
    + licenses: kernel release -> the module's license (open modules are "Dual MIT/GPL")
    """
    problems = []
    for kernel, why in kernels.items():
        version = modules.get(kernel)
        if not version:
            problems.append(f"{why} kernel {kernel} has no NVIDIA module: {fix or 'build it'}")
            continue
        if version.split(".")[0] != branch:
            problems.append(f"{why} kernel {kernel} has NVIDIA module {version}, the plan says "
                            f"branch {branch}: {fix or 'rebuild it'}")
            continue
        license_ = (licenses or {}).get(kernel)
        if flavour and license_:
            found = "open" if "MIT" in license_ or "GPL" in license_ else "proprietary"
            if found != flavour:
                problems.append(f"{why} kernel {kernel} has {found} NVIDIA modules "
                                f"({license_}), the plan says {flavour}")
    return problems


def dkms_fix(kernel: str) -> str:
    return (f"install its headers and build it: apt install linux-headers-{kernel} && "
            f"dkms autoinstall -k {kernel}")
