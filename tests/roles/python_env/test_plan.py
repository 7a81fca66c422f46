"""roles/python_env at the plan level: the shared cache and the hash-locked installs."""

from __future__ import annotations

import re

import pytest

from tests.plan.cases import (
    host_data,
    pip_installs,
    run_case,
)


def test_shared_pip_cache_installs_take_turns_only_to_fill_it():
    # roles/cache: hosts that start together must not all miss the fleet's shared cache, and
    # take turns only while the first fills it (tests/roles/python_env/
    # test_shared_cache_install.py runs it).
    data = host_data("debian-12", "no-gpu", "distro", cache_pip_dir="/srv/dlws-cache")
    run = run_case("debian-12_no-gpu_shared-cache", data)
    commands = pip_installs(run, "Install the frameworks")
    assert commands, run.describe()
    lock = "mkdir -p -- /srv/dlws-cache && flock /srv/dlws-cache/.dlws-install.lock sh -c "
    assert all(lock in c and "--offline" in c.split("||")[0] for c in commands), commands


def _write_locks(folder, names: list[str]) -> dict[str, str]:
    """Stand-in locks under the names the refusal gave (a real one needs PyPI: `bin/dlws lock`)."""
    bodies = {}
    for name in names:
        pins = ["uv==0.13.9"] if name.startswith("uv-") else ["numpy==2.4.6", "mlxtend==0.25.0"]
        bodies[name] = "".join(f"{pin} \\\n    --hash=sha256:{'ab' * 32}\n" for pin in pins)
        (folder / name).write_text(bodies[name])
    return bodies


@pytest.mark.parametrize("cache", [None, "/srv/dlws-cache"], ids=["own-cache", "shared-cache"])
def test_hash_locked_installs(tmp_path, monkeypatch, cache):
    """With hashes required (the default), a host without its locks is refused before any
    operation; with them, both installs take the whole lock and check every file's sha256."""
    monkeypatch.setenv("DLWS_LOCK_DIR", str(tmp_path))
    more = {"frameworks_tensorflow": "none", "frameworks_torch": "none",
            "python_env_require_hashes": True, "cache_pip_dir": cache}
    data = host_data("debian-12", "no-gpu", "distro", **more)
    refused = run_case("debian-12_no-gpu_locked", data)
    assert refused.ops == [] and "python_env_require_hashes" in (refused.error or ""), \
        refused.describe()
    names = re.findall(r"no hash lock \S*/([^/\s]+\.txt)", refused.error)
    assert [n.split("-")[0] for n in names] == ["uv", "env"], refused.error

    bodies = _write_locks(tmp_path, names)
    run = run_case("debian-12_no-gpu_locked", data)
    uploads = run.uploads()
    for name, body in bodies.items():
        assert uploads.get(f"/opt/dlws/locks/{name}") == body, run.describe()
    for op_name, lock_name in (("Install uv", names[0]), ("from the hash lock", names[1])):
        [command] = pip_installs(run, op_name)
        assert f"--no-deps --require-hashes -r /opt/dlws/locks/{lock_name}" in command, command
        if cache:
            # the shared cache first: uv offline, pip from the cache's wheel folder
            assert f"flock {cache}/.dlws-install.lock sh -c " in command, command
            assert "--offline" in command or f"--no-index --find-links {cache}/wheels" in command
        else:
            assert ".dlws-install.lock" not in command and "--offline" not in command, command


RECORD = "/opt/dlws/venv/dlws-bytecode.json"


@pytest.mark.parametrize("installed, record, planned", [
    ([], False, "installed"),
    (["uv 0.13.9"], False, "checked"),
    (["uv 0.13.9"], True, None),
], ids=["install", "installed-before-the-record", "converged"])
def test_each_install_records_its_bytecode_and_an_older_environment_is_recorded_once(
        installed, record, planned):
    """verify checks the environment's bytecode against the record the deploy writes right
    after pip or uv compiled it; an environment installed before dlws kept one gets it (each
    file checked against its source first); with both in place the operation changes nothing."""
    stat = f"user=root group=root mode=-rw-r--r-- atime=0 mtime=0 ctime=0 size=9 '{RECORD}'"
    data = host_data("debian-12", "no-gpu", "distro", frameworks_tensorflow="none",
                     frameworks_torch="none")
    data["fake_responses"].update({"importlib.metadata as m": installed,
                                   RECORD: stat if record else ""})
    run = run_case("debian-12_no-gpu_bytecode", data)
    [op] = run.named("Install uv")
    if planned is None:
        assert op.commands == [], op.commands
        return
    record_command = op.commands[-1]
    assert record_command.startswith("/opt/dlws/venv/bin/python -I -S -B -c "), record_command
    assert f'"bytecode": ["/opt/dlws/venv", "record-bytecode", "{planned}"]' in record_command
    assert len(op.commands) == (2 if planned == "installed" else 1), op.commands
