"""Checks of roles/base: apt components, essential packages, CA certificates, proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.facts.deb import DebPackages

from dlws.facts.gpu_readings import apt_components
from dlws.facts.readers import testinfra_reader as fact_reader
from dlws.roles.base import APT_PROXY_FILE, COMPONENTS, ESSENTIAL_PACKAGES, SOURCES_FILE
from dlws.validate.domains import ca_file_name, pem_bodies

from .helpers import apt_source_paths
from .integrity import dpkg_problems


@pytest.fixture(scope="module")
def deb_packages(host) -> dict:
    """Installed dpkg packages, read once per host with the fact the deploy's apt.packages reads
    (pyinfra's DebPackages: `dpkg -l`, installed or held)."""
    return fact_reader(host)(DebPackages)


@pytest.mark.parametrize("package", ESSENTIAL_PACKAGES)
def test_essential_package_installed(deb_packages, package):
    """Each package the base role installs is installed (dpkg's view)."""
    assert package in deb_packages, f"apt package {package} is not installed"


def test_extra_packages_installed(deb_packages, target):
    """Every package of base_extra_packages is installed (dpkg's view)."""
    missing = [p for p in target["base_extra_packages"] if p not in deb_packages]
    assert not missing, f"base_extra_packages not installed: {missing}"


def test_apt_sources_carry_stack_components(host, target, plan):
    """The managed apt sources enable every component the stack needs."""
    if not target["base_apt_manage_sources"]:
        pytest.skip("base_apt_manage_sources is false: the host's sources are left alone")
    os_id = plan.os.id
    files = {p: host.file(p).content_string for p in apt_source_paths(host)}
    # Enabled deb entries only: a commented-out line gives apt nothing.
    enabled = apt_components(files)
    missing = [c for c in COMPONENTS[os_id] if c != "non-free-firmware" and c not in enabled]
    assert host.file(SOURCES_FILE).exists, f"{SOURCES_FILE} is missing"
    assert not missing, (f"apt sources lack components {missing} (enabled: {sorted(enabled)}) in "
                         f"{', '.join(files)}")


def test_extra_ca_certificates_trusted(host, target):
    """Every certificate of base_extra_ca_certs is installed and in the system CA bundle."""
    if not target["base_extra_ca_certs"]:
        pytest.skip("no base_extra_ca_certs declared")
    bundle = pem_bodies(host.file("/etc/ssl/certs/ca-certificates.crt").content_string)
    for src in target["base_extra_ca_certs"]:
        installed = host.file(f"{target['base_ca_dir']}/{ca_file_name(src)}")
        assert installed.exists, f"CA certificate {installed.path} is missing"
        wanted = pem_bodies(Path(src).expanduser().read_text(errors="replace"))
        assert wanted, f"{src} holds no PEM certificate: there is nothing the host could trust"
        missing = len(wanted - bundle)
        assert not missing, (f"{missing} of the {len(wanted)} certificates of {src} are not in "
                             "the host's CA bundle: update-ca-certificates did not take them")


def test_apt_proxy_configured(host, target):
    """apt's proxy file names each declared proxy and only root can read it."""
    if not (target["base_http_proxy"] or target["base_https_proxy"]):
        pytest.skip("no proxy declared")
    conf = host.file(APT_PROXY_FILE)
    assert conf.exists, f"{APT_PROXY_FILE} is missing"
    # The file may hold a proxy password: root only, and never quoted in a report.
    assert conf.user == "root" and conf.mode & 0o007 == 0, (
        f"{APT_PROXY_FILE} is {conf.user}:{conf.group} {oct(conf.mode)}: others can read it")
    text = conf.content_string
    for key in ("base_http_proxy", "base_https_proxy"):
        if target[key]:
            found = target[key] in text
            assert found, f"{key} (as declared) is not in {APT_PROXY_FILE}"


def test_package_inventory_recorded(host, record_fact, read_fact):
    # What `dlws report --diff` compares between runs: every dpkg package and the kernel.
    # The command and parser are pyinfra's own DebPackages fact (`dpkg -l`, installed and held).
    """The host's dpkg packages and kernel are read and recorded for the run's report."""
    packages = read_fact(DebPackages)
    assert packages, "dpkg -l listed no package (or failed)"
    # One version per package; a package installed for two architectures lists both.
    record_fact("packages.dpkg", {name: ", ".join(sorted(versions))
                                  for name, versions in sorted(packages.items())})
    record_fact("kernel.release", host.check_output("uname -r"))


def test_debian_package_files_match_dpkg(host):
    """Every installed Debian package's files match dpkg's own digests (conffiles aside)."""
    # Every installed package's files against dpkg's own digests (dpkg --verify, several
    # packages at a time): the driver, CUDA, cuDNN, NCCL, the base packages and the Python the
    # environment runs on included. Conffiles are left out (an admin may edit those; apt's
    # trust settings have their own checks in test_security).
    problems, error = dpkg_problems(host)
    assert not error, error
    assert not problems, ("files of installed Debian packages changed since dpkg installed them "
                          "(package: file; reinstall with apt-get install --reinstall): "
                          + "; ".join(problems[:40]))
