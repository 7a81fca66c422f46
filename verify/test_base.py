"""Checks of roles/base: apt components, essential packages, CA certificates, proxy."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.facts.deb import DebPackages

from dlws import facts
from roles.base import APT_PROXY_FILE, COMPONENTS, ESSENTIAL_PACKAGES, SOURCES_FILE


@pytest.fixture(scope="module")
def deb_packages(host) -> dict:
    """Installed dpkg packages, read once per host with the fact the deploy's apt.packages reads
    (pyinfra's DebPackages: `dpkg -l`, installed or held)."""
    return facts.testinfra_reader(host)(DebPackages)


@pytest.mark.parametrize("package", ESSENTIAL_PACKAGES)
def test_essential_package_installed(deb_packages, package):
    assert package in deb_packages, f"apt package {package} is not installed"


def test_extra_packages_installed(deb_packages, target):
    missing = [p for p in target["base_extra_packages"] if p not in deb_packages]
    assert not missing, f"base_extra_packages not installed: {missing}"


def test_apt_sources_carry_stack_components(host, target):
    if not target["base_apt_manage_sources"]:
        pytest.skip("base_apt_manage_sources is false: the host's sources are left alone")
    os_id = host.system_info.distribution
    listing = host.run("cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
                       "/etc/apt/sources.list.d/*.sources 2>/dev/null").stdout
    missing = [c for c in COMPONENTS[os_id] if c != "non-free-firmware" and c not in listing]
    assert host.file(SOURCES_FILE).exists, f"{SOURCES_FILE} is missing"
    assert not missing, f"apt sources lack components {missing}:\n{listing}"


def test_extra_ca_certificates_trusted(host, target):
    if not target["base_extra_ca_certs"]:
        pytest.skip("no base_extra_ca_certs declared")
    bundle = host.file("/etc/ssl/certs/ca-certificates.crt").content_string
    for src in target["base_extra_ca_certs"]:
        installed = host.file(f"{target['base_ca_dir']}/{Path(src).stem}.crt")
        assert installed.exists, f"CA certificate {installed.path} is missing"
        first_cert = Path(src).expanduser().read_text().split("-----END CERTIFICATE-----")[0]
        body = first_cert.split("-----BEGIN CERTIFICATE-----")[-1].strip()
        assert body and body in bundle, (
            f"{src} is not in the host's CA bundle: update-ca-certificates did not take it")


def test_apt_proxy_configured(host, target):
    if not (target["base_http_proxy"] or target["base_https_proxy"]):
        pytest.skip("no proxy declared")
    conf = host.file(APT_PROXY_FILE)
    assert conf.exists, f"{APT_PROXY_FILE} is missing"
    for key in ("base_http_proxy", "base_https_proxy"):
        if target[key]:
            assert target[key] in conf.content_string, f"{key} not in {APT_PROXY_FILE}"
