"""roles/python_env's shared-cache install run for real in a local shell: hosts that start
together take turns only while the first fills the cache, then install from it side by side."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from dlws.roles.python_env import shared_cache_install

# A stand-in for uv: `--offline` succeeds only once the cache holds the wheel; online it takes
# a second (the download), fills the cache and logs "upstream"; every install logs its start.
FAKE_UV = """#!/bin/sh
cache="$CACHE"
echo "start $$ $(date +%s.%N)" >> "$LOG"
case " $* " in
  *" --offline "*) test -e "$cache/wheel" || exit 1; sleep 1
                   echo "offline $$ $(date +%s.%N)" >> "$LOG";;
  *) sleep 2; touch "$cache/wheel"; echo "upstream $$" >> "$LOG";;
esac
"""


def _hosts(tmp_path: Path, count: int) -> tuple[list[str], Path]:
    uv = tmp_path / "uv"
    uv.write_text(FAKE_UV)
    uv.chmod(0o755)
    cache, log = tmp_path / "cache", tmp_path / "log"
    command = shared_cache_install(str(cache), "uv", [str(uv), "pip", "install"], [], [],
                                   ["--", "numpy==2.2.6"])
    env = {"CACHE": str(cache), "LOG": str(log), "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    procs = [subprocess.Popen(["sh", "-c", command], env=env) for _ in range(count)]
    codes = [proc.wait(timeout=60) for proc in procs]
    assert codes == [0] * count, codes
    return log.read_text().splitlines(), started


def test_the_first_host_fills_the_cache_and_the_others_install_from_it_together(tmp_path):
    lines, _ = _hosts(tmp_path, 4)
    assert sum(line.startswith("upstream") for line in lines) == 1, lines
    offline = [float(line.split()[2]) for line in lines if line.startswith("offline")]
    # The three that waited installed from the cache at once, not one after another (each
    # install takes 1 s here): their ends lie within one install of each other.
    assert len(offline) >= 3, lines
    assert max(offline) - min(offline) < 0.9, lines


def test_a_filled_cache_takes_no_lock(tmp_path):
    _hosts(tmp_path, 1)
    (tmp_path / "log").unlink()
    lock = tmp_path / "cache" / ".dlws-install.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "30"])
    try:
        time.sleep(0.2)
        lines, started = _hosts(tmp_path, 2)
        assert time.monotonic() - started < 10, "an install waited on the lock"
        assert not any(line.startswith("upstream") for line in lines), lines
    finally:
        holder.kill()
