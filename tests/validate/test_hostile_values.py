"""Hostile values through the real deploy file (plan level, recorded facts of a bare Debian 12).

Every command the deploy would send and every file it would write is inspected: a credential
appears only in the root-only files meant for it (never in a command, an environment, a
world-readable file); a hostile string that passes validation reaches a shell only quoted.
The same is proven on a real container by tests/validate/test_container_refusals.py.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from dlws import report
from dlws.roles.base import APT_PROXY_FILE, PROXY_ENV_FILE
from dlws.roles.python_env import NETRC, pip_conf_content
from dlws.validate.domains import netrc_text
from dlws.validate.secrets import redact
from tests.fake_hosts import plan
from tests.plan.cases import host_data

PROXY_SECRET = "Pr0xy-s3cret"
INDEX_SECRET = "1ndex-t0ken"
SECRET_DATA = {
    "base_http_proxy": f"http://bob:{PROXY_SECRET}@proxy.lab:3128",
    "base_https_proxy": f"http://bob:{PROXY_SECRET}@proxy.lab:3128",
    "python_env_index_url": f"https://alice:{INDEX_SECRET}@pypi.lab/simple",
    "python_env_extra_index_urls": [f"https://alice:{INDEX_SECRET}@extra.lab/simple"],
}
# The only files a credential may be written to, and the mode each gets.
SECRET_FILES = {APT_PROXY_FILE: "640", PROXY_ENV_FILE: "640", NETRC: "640"}


def _secret_run():
    data = host_data("debian-12", "no-gpu", "auto", **SECRET_DATA)
    data["fake_responses"]["uname -s"] = "Linux"  # server.group reads the OS (pyinfra's Os)
    return plan({"@fake/secret": data})["@fake/secret"]


def test_credentials_only_in_root_only_files():
    run = _secret_run()
    assert run.error is None, run.error
    leaks = []
    for op in run.ops:
        for command in op.commands:
            if PROXY_SECRET in command or INDEX_SECRET in command:
                leaks.append(f"command of {op.name!r}: {redact(command)[:200]}")
        for dest, content in op.uploads.items():
            if (PROXY_SECRET in content or INDEX_SECRET in content) and dest not in SECRET_FILES:
                leaks.append(f"{dest} (written by {op.name!r})")
            if dest in SECRET_FILES:
                modes = [c for c in op.commands if c.startswith("chmod")]
                assert any(f"chmod {SECRET_FILES[dest]} " in c for c in modes), (dest, modes)
    assert not leaks, "credentials outside their root-only files:\n" + "\n".join(leaks)
    uploads = run.uploads()
    assert PROXY_SECRET in uploads[PROXY_ENV_FILE] and INDEX_SECRET in uploads[NETRC]


def test_installs_read_the_proxy_from_its_file_not_their_command_line():
    run = _secret_run()
    installs = [c for c in run.commands() if " install " in c and "/bin/pip" in c]
    assert installs, run.describe()
    for command in installs:
        assert f". {PROXY_ENV_FILE} " in command, command
        assert "--index-url https://pypi.lab/simple" in command, command


def test_world_readable_pip_and_uv_config_carry_no_credentials():
    pip_conf, uv_toml = pip_conf_content("/etc/ssl/certs/ca-certificates.crt",
                                         SECRET_DATA["python_env_index_url"],
                                         SECRET_DATA["python_env_extra_index_urls"], None)
    assert INDEX_SECRET not in pip_conf + uv_toml
    assert "index-url = https://pypi.lab/simple" in pip_conf
    assert 'index-url = "https://pypi.lab/simple"' in uv_toml
    assert f"machine pypi.lab login alice password {INDEX_SECRET}" in netrc_text(
        [SECRET_DATA["python_env_index_url"]])


def test_reports_are_redacted(tmp_path):
    """A check that prints a credential: the report files never carry it."""
    (tmp_path / report.JUNIT).write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1" failures="1">'
        '<testcase classname="verify.test_base" name="test_apt_proxy_configured[@docker/x]">'
        f'<failure message="proxy http://bob:{PROXY_SECRET}@proxy.lab:3128 not in file">'
        f"Authorization: Bearer {INDEX_SECRET}</failure></testcase></testsuite></testsuites>")
    report.write(tmp_path)
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert PROXY_SECRET not in text and INDEX_SECRET not in text, path


# Injection: every string key of a host given hostile values ------------------------------------

HOSTILE = [";touch /tmp/dlws-pwned", "$(touch /tmp/dlws-pwned)", "`touch /tmp/dlws-pwned`",
           "'\"quote", "new\nline"]


def _string_keys():
    from dlws.roles import all_keys

    return [key for key in all_keys() if str in key.types or key.types == (list,)]


@pytest.mark.parametrize("payload", HOSTILE, ids=["semicolon", "dollar", "backtick", "quotes",
                                                  "newline"])
def test_every_string_key_with_a_hostile_value_is_refused_or_harmless(payload):
    """Each string key (and each list of strings) given each payload, as a suffix of a valid
    value: refused by validation, or (if accepted) found in no command unquoted."""
    from dlws.roles import all_defaults, all_keys
    from dlws.validate.inventory import host_problems

    defaults = all_defaults()
    accepted = []
    for key in _string_keys():
        base = defaults[key.name]
        if key.types == (list,):
            value = [payload] if not base else [f"{base[0]}{payload}"]
        else:
            value = f"{base or 'x'}{payload}"
        if not host_problems("h", {key.name: value}, all_keys()):
            accepted.append((key.name, value))
    # What validation lets through must be rendered harmlessly: run the deploy with each.
    for name, value in accepted:
        data = host_data("debian-12", "no-gpu", "auto", **{name: value})
        run = plan({"@fake/hostile": data})["@fake/hostile"]
        for command in run.commands():
            assert "touch /tmp/dlws-pwned" not in _unquoted(command), (name, command)


def _unquoted(command: str) -> str:
    """The parts of a shell line outside single quotes (where a payload would run)."""
    try:
        return " ".join(word for word in shlex.split(command, posix=False)
                        if not word.startswith("'"))
    except ValueError:
        return command


def test_injection_payloads_are_all_refused_by_validation():
    """The record: with today's domains every payload on every string key is refused."""
    from dlws.roles import all_defaults, all_keys
    from dlws.validate.inventory import host_problems

    defaults, accepted = all_defaults(), []
    for key in _string_keys():
        for payload in HOSTILE:
            base = defaults[key.name]
            value = ([f"{base[0] if base else 'x'}{payload}"] if key.types == (list,)
                     else f"{base or 'x'}{payload}")
            if not host_problems("h", {key.name: value}, all_keys()):
                accepted.append(f"{key.name}={json.dumps(value)}")
    assert not accepted, "hostile values accepted: " + ", ".join(accepted)


def test_string_keys_are_all_covered():
    names = {key.name for key in _string_keys()}
    assert {"python_env_prefix", "base_http_proxy", "python_env_index_url",
            "base_extra_packages", "base_lab_users", "gpu_model"} <= names
    assert len(names) >= 25, sorted(names)
    assert Path(NETRC).parent == Path(PROXY_ENV_FILE).parent
