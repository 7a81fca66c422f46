"""Values in systemd unit files (dlws/unitfile.py): escaped so systemd reads them as written."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dlws import unitfile
from dlws.roles.notebooks import unit


def test_exec_line_quotes_escapes_and_makes_specifiers_literal():
    line = unitfile.exec_line("/opt/a b/bin/hub", "-f", '/etc/%h$HOME"\\x')
    assert line == '"/opt/a b/bin/hub" "-f" "/etc/%%h$$HOME\\"\\\\x"'


@pytest.mark.parametrize("value", ["/srv/x\nExecStartPre=/bin/sh -c id", "/srv/\x1b", "/srv/\r"])
def test_control_characters_are_refused(value):
    with pytest.raises(ValueError):
        unitfile.exec_line(value)
    with pytest.raises(ValueError):
        unitfile.setting(value)
    with pytest.raises(ValueError):
        unitfile.environment("PATH", value)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed on this machine")
def test_systemd_reads_the_notebooks_unit_without_error(tmp_path):
    data = {"notebooks_prefix": "/opt/dl%ws hub", "notebooks_config_dir": "/etc/dlws$x",
            "notebooks_state_dir": "/var/lib/dlws%h", "python_env_prefix": "/opt/dlws/venv"}
    text = unit(data)
    assert "%%h" in text and "$$x" in text, text
    # systemd-analyze verify wants the program to exist: point ExecStart at a real one.
    path = tmp_path / "i21b-hub.service"
    path.write_text(text.replace("/opt/dl%%ws hub/bin/jupyterhub", "/bin/true"))
    out = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "quoting" not in out.stderr.lower(), out.stderr
