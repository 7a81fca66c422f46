"""Host-data validation: unknown keys, types and values are refused with host, key and fix."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from dlws.roles import all_keys
from dlws.validate import domains
from dlws.validate.inventory import host_problems
from dlws.validate.schema import KEY_PREFIXES


def messages(data):
    return [str(p) for p in host_problems("ws-01", data, all_keys())]


def test_defaults_are_valid():
    assert messages({}) == []


def test_pyinfra_own_keys_pass():
    assert messages({"ssh_user": "admin", "ssh_port": 22, "_sudo": True,
                     "docker_identifier": "x"}) == []


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ({"gpu_modle": "NVIDIA L4"}, "gpu_modle", "did you mean 'gpu_model'"),
        ({"gpu_count": "2"}, "gpu_count", "expected int"),
        ({"gpu_count": True}, "gpu_count", "expected int"),
        ({"gpu_count": -1}, "gpu_count", "0 or more"),
        ({"gpu_count": 2}, "gpu_model", "no gpu_model is declared"),
        ({"python_env_installer": "conda"}, "python_env_installer", "allowed: 'uv', 'pip'"),
        ({"python_env_installer": "uvv"}, "python_env_installer", "did you mean 'uv'"),
        ({"python_env_wheelhouse": "/nonexistent/wheels"}, "python_env_wheelhouse",
         "does not exist on the controller"),
        ({"base_extra_ca_certs": ["/nonexistent/ca.pem"]}, "base_extra_ca_certs",
         "does not exist on the controller"),
        ({"verify_min_accuracy": 1.5}, "verify_min_accuracy", "must be in (0, 1]"),
        ({"python_env_prefix": "opt/venv"}, "python_env_prefix", "absolute path"),
        ({"base_http_proxy": "proxy:3128"}, "base_http_proxy", "not an http(s)"),
        ({"frameworks_torch": "latest"}, "frameworks_torch", "use 'auto', 'none'"),
    ],
    ids=lambda value: str(value)[:40] if not isinstance(value, dict) else "-".join(value),
)
def test_bad_data_is_refused(data, key, fragment):
    found = messages(data)
    assert any(m.startswith(f"host ws-01: {key}:") and fragment in m for m in found), found


def test_every_key_is_prefixed_by_its_owner():
    assert [k.name for k in all_keys() if not k.name.startswith(KEY_PREFIXES)] == []


def test_every_key_is_documented_in_group_data_all():
    """inventory/group_data/all.py lists every key at its default, so docs cannot drift."""
    namespace: dict = {}
    exec(Path("inventory/group_data/all.py").read_text(), namespace)
    documented = {k: v for k, v in namespace.items() if not k.startswith("_")}
    expected = {key.name: key.default for key in all_keys()}
    assert documented == expected


def test_a_ca_bundle_named_by_every_host_is_parsed_once_and_again_when_edited(tmp_path,
                                                                               monkeypatch):
    """A fleet names one CA bundle for every host: OpenSSL parses its text once (64 parses
    were 2.8 s of a 64-host no-change run); an edit is a new text, checked again."""
    bundle = tmp_path / "lab-ca.pem"
    bundle.write_text(Path("/etc/ssl/certs/ca-certificates.crt").read_text())
    parsed = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        parsed.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    domains._pem_text_problem.cache_clear()
    assert all(domains.pem_certificates([str(bundle)]) is None for _ in range(64))
    assert len(parsed) == 1
    bundle.write_text(bundle.read_text() + "-----BEGIN PRIVATE KEY-----\nAAAA\n")
    assert "holds a private key" in domains.pem_certificates([str(bundle)])
