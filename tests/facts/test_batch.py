"""dlws.facts.batch: FactBatch (many facts, one round trip) and the run's snapshot served from it.

The batch parser is fed recorded output (tests/fixtures/plan/batch/: the outputs recorded under
tests/fixtures/plan/ for an 8 x H100 HGX host on Ubuntu 22.04, between the batch's markers) and
compared with each fact's own parser; the shell side runs for real in a local `sh`; the cache
runs real pyinfra operations on @local in a temporary folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from io import StringIO
from pathlib import Path

import gevent
import pytest
from pyinfra import host as host_proxy
from pyinfra.api import Config, FactBase, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.operation import add_op, operation
from pyinfra.api.operations import run_ops
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_state
from pyinfra.facts.files import Directory, File, FileContents, Sha1File
from pyinfra.facts.server import Arch, Date, KernelVersion
from pyinfra.operations import files, server

from dlws.command import sh
from dlws.facts import batch as fact_cache
from dlws.facts import pyinfra_patch, stamps
from dlws.facts.batch import FactBatch, run_fact, run_facts
from dlws.facts.gpu import NvidiaModuleVersion, NvidiaPackages, NvidiaPciDevices, NvSwitchCount
from dlws.facts.readers import HOST_FACTS, UNREAD, host_facts
from dlws.facts.system import (
    Container,
    Display,
    DpkgArchitecture,
    KernelImagePackages,
    OsRelease,
    SecureBoot,
)
from tests.fake_hosts import fixture_lines

MARKER = "@@dlws-fact-0123456789ab@@"


def _batch(monkeypatch, requests) -> FactBatch:
    monkeypatch.setattr(fact_cache.secrets, "token_hex", lambda n: "0123456789ab")
    batch = FactBatch()
    batch.command(requests)
    return batch


def test_recorded_batch_is_split_and_parsed_by_each_facts_own_parser(monkeypatch):
    batch = _batch(monkeypatch, HOST_FACTS)
    results = dict(zip([cls for cls, _ in HOST_FACTS],
                       batch.process(fixture_lines("batch", "ubuntu-22.04_h100x8.txt")),
                       strict=True))
    assert results[OsRelease] == ("ok", OsRelease().process(fixture_lines("os-release",
                                                                          "ubuntu-22.04")))
    lspci = fixture_lines("lspci", "h100x8.txt")
    assert results[NvidiaPciDevices] == ("ok", NvidiaPciDevices().process(lspci))
    assert len(results[NvidiaPciDevices][1]) == 8
    # NvSwitchCount runs the same command: run once in the batch, parsed by its own parser.
    assert results[NvSwitchCount] == ("ok", 4)
    assert results[Container] == ("ok", "")  # no output: the fact's default
    assert results[NvidiaModuleVersion] == ("ok", "535.183.01")
    # The kernel line had no newline: the marker followed it on the same line.
    assert results[KernelVersion] == ("ok", "5.15.0-125-generic")
    assert results[Arch] == ("ok", "x86_64")
    assert results[DpkgArchitecture] == ("ok", "amd64")
    assert results[SecureBoot] == ("failed", None)  # exit 1: read alone, pyinfra reports it
    assert results[NvidiaPackages][1] == NvidiaPackages().process(
        fixture_lines("dpkg", "ubuntu-22.04_t4_535-server.txt"))


def test_recorded_batch_feeds_the_plan_like_single_reads(monkeypatch):
    """host_facts through a reader whose `many` answers from the recorded batch, against one
    whose facts are each read alone from the same recorded outputs: the same HostFacts."""
    lines = fixture_lines("batch", "ubuntu-22.04_h100x8.txt")
    single = {OsRelease: fixture_lines("os-release", "ubuntu-22.04"),
              NvidiaPciDevices: fixture_lines("lspci", "h100x8.txt"),
              NvSwitchCount: fixture_lines("lspci", "h100x8.txt"), Container: [],
              NvidiaModuleVersion: lines[lines.index(f"{MARKER} 2 0") + 1:][:1],
              KernelVersion: ["5.15.0-125-generic"], Arch: ["x86_64"],
              SecureBoot: ["SecureBoot enabled"],
              NvidiaPackages: fixture_lines("dpkg", "ubuntu-22.04_t4_535-server.txt"),
              Display: [], KernelImagePackages: ["linux-image-generic-hwe-22.04"],
              DpkgArchitecture: ["amd64"]}
    reads: list = []

    def one(fact_cls, *args):
        reads.append(fact_cls)
        out = single[fact_cls]
        return fact_cls().process(out) if out else fact_cls().default()

    class Reader:
        __call__ = staticmethod(one)

        @staticmethod
        def many(requests):
            results = _batch(monkeypatch, requests).process(lines)
            return [value if state == "ok" else UNREAD for state, value in results]

    data = {"gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8}
    batched = host_facts(Reader(), data)
    # SecureBoot: the one fact the batch could not read; KernelImagePackages (issue 13's kernel
    # headers) is not in the batch: both read alone.
    assert reads == [SecureBoot, KernelImagePackages]
    assert batched == host_facts(one, data)
    assert batched.nvswitches == 4 and batched.secure_boot is True
    assert batched.installed_driver == "535.183.01"


def test_a_batch_that_lost_a_marker_reads_nothing_from_it(monkeypatch):
    batch = _batch(monkeypatch, [(OsRelease, {}), (Arch, {})])
    results = batch.process(["ID=debian", f"{MARKER} 0 0", "x86_64"])  # no marker for Arch
    assert results[0][0] == "ok"
    assert results[1] == ("failed", None)


def _sh(command: str) -> tuple[int, str]:
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    return out.returncode, out.stdout


def _no_atime(values: list) -> list:
    return [{k: v for k, v in value.items() if k != "atime"} if isinstance(value, dict) else value
            for value in values]


def test_batch_in_a_real_shell_equals_each_fact_read_alone(tmp_path):
    (tmp_path / "a").write_text("one\n\ntwo\n\n")  # trailing empty lines kept
    (tmp_path / "b").write_text("no newline")
    requests = [*HOST_FACTS, (File, {"path": str(tmp_path / "a")}),
                (Sha1File, {"path": str(tmp_path / "a")}),
                (FileContents, {"path": str(tmp_path / "a")}),
                (FileContents, {"path": str(tmp_path / "b")}),
                (Directory, {"path": str(tmp_path / "missing")}),
                (File, {"path": str(tmp_path / "missing")})]
    batched = run_facts(_sh, requests)
    alone = [run_fact(_sh, cls, *kwargs.values()) for cls, kwargs in requests]
    # The batch's own reads of `a` (sha1sum, cat) move its access time: compare without it.
    assert _no_atime(batched) == _no_atime(alone)
    assert batched[-4] == ["one", "", "two", ""]
    assert batched[-3] == ["no newline"]


# What a fact that shares the batch's shell must leave as it found it: the environment, the
# folder, the file mode mask, traps, options, positional arguments and IFS.
_SHELL_STATE = ('export -p; pwd; umask; trap; set +o; echo "args $# $*"; '
                'printf "ifs %s." "$IFS" | od -c')


def _facts_sharing_the_shell() -> list[type]:
    found, todo = [], [FactBase]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith(("dlws.", "pyinfra.")) and fact_cache.shares_shell(cls):
            found.append(cls)
    return sorted(set(found), key=lambda cls: (cls.__module__, cls.__qualname__))


SHARED = _facts_sharing_the_shell()


def test_the_facts_of_every_rerun_share_the_batchs_shell(monkeypatch):
    # A converged rerun reads these in its one command (pyinfra --debug shows it): a fork each.
    assert {Container, Display, NvidiaModuleVersion, NvidiaPciDevices, SecureBoot, Date,
            stamps.Stamps, fact_cache.ConvergedRecord} <= set(SHARED)
    raw = _batch(monkeypatch, []).command([(Date, {}), (Arch, {})]).get_raw_value()
    assert raw.startswith("{ date ") and "\n} 2>/dev/null; echo" in raw
    assert "; ( uname -m \n) 2>/dev/null; echo" in raw  # pyinfra's Arch: not declared


def test_every_fact_that_says_it_shares_the_shell_is_checked():
    """Each class whose source says ``shares_shell = True`` (dlws/, roles/) is among those the
    next test runs: one in a module nothing here imports would escape it."""
    import ast

    root = Path(__file__).resolve().parents[2]
    declared = set()
    for path in [*(root / "dlws").rglob("*.py"), *(root / "roles").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(each, ast.Assign) and isinstance(each.value, ast.Constant)
                    and each.value.value is True
                    and any(getattr(target, "id", None) == "shares_shell"
                            for target in each.targets) for each in node.body):
                declared.add(node.name)
    assert declared and declared <= {cls.__qualname__ for cls in SHARED}, declared


@pytest.mark.parametrize("fact_cls", SHARED, ids=lambda cls: cls.__qualname__)
def test_a_fact_that_shares_the_batchs_shell_leaves_it_as_it_found_it(fact_cls, tmp_path):
    (tmp_path / "file").write_text("x\n")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "link").symlink_to(tmp_path / "file")
    kwargs = {"entries": (str(tmp_path / "file"),), "trees": (str(tmp_path / "tree"),),
              "venvs": (str(tmp_path / "venv"),)} if fact_cls is stamps.Stamps else {}
    command, _ = fact_cache._command_of(fact_cls(), kwargs)
    # Run as the batch runs it, under set -u: a variable read before the fact sets it ends the
    # shell, as an exit would; the state printed before and after must be the same.
    script = (f"set -u; {_SHELL_STATE}; echo @@; {{ {fact_cache._raw(command)}\n}} "
              f'>/dev/null 2>&1; echo "@@ $?"; {_SHELL_STATE}')
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    before, _, rest = out.stdout.partition("@@\n")
    status, _, after = rest.partition("\n")
    assert out.returncode == 0 and status.startswith("@@ "), (fact_cls, out.stderr)
    assert after == before, fact_cls


# --- the cache in front of pyinfra's get_fact -----------------------------------------------------


@operation()
def _clock_decision(holds_for: float):
    """An operation that, like roles/base's apt index refresh, decides on the host's clock."""
    now = host_proxy.get_fact(Date).timestamp()
    fact_cache.valid_until(host_proxy, now + holds_for)
    host_proxy.noop("still fresh")
    return
    yield


def _run(tmp_path: Path, content: str, run_key: str | None = None,
         clock: float | None = None, script: str | None = None,
         declared: list[str] | None = None) -> dict:
    """One pyinfra run on @local: prefetch as the deploy's plan does, then two files.put and a
    files.directory; the count of real fact reads (round trips) and what changed. With a
    run_key, as deploy/workstation.py: the operations are planned only where the host has not
    converged, and the last one records a converged run."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    state.init(inventory, Config())
    reads: list[str] = []
    original = pyinfra_patch.ORIGINAL["get_fact"]

    def counting(self, fact_cls, *args, **kwargs):
        reads.append(fact_cls.__name__)
        return original(self, fact_cls, *args, **kwargs)

    pyinfra_patch.ORIGINAL["get_fact"] = counting
    skipped = False
    try:
        with ctx_state.use(state):
            state.set_stage(StateStage.Connect)
            connect_all(state)
            host = inventory.get_host("@local")
            state.set_stage(StateStage.Prepare)
            with ctx_host.use(host):
                fact_cache.prefetch(host, [(Arch, {})])
                skipped = run_key is not None and fact_cache.converged(host, run_key)
            first = []
            if script is not None:  # (added first: the operations run in the order added)
                first = [add_op(state, server.shell, commands=[script])]
                if declared is not None:
                    with ctx_host.use(host):
                        fact_cache.touches(next(iter(first[0].values())), declared)
            ops = [] if skipped else [*first,
                add_op(state, files.put, src=StringIO(content), dest=str(tmp_path / "a"),
                       mode="644"),
                add_op(state, files.directory, path=str(tmp_path / "d"), mode="755"),
                add_op(state, files.put, src=StringIO("fixed\n"), dest=str(tmp_path / "b"),
                       mode="644")]
            if ops and clock is not None:
                ops.insert(0, add_op(state, _clock_decision, holds_for=clock))
            if ops and run_key is not None:
                fact_cache.record_after(host, next(iter(ops[-1].values())))
            state.set_stage(StateStage.Execute)
            run_ops(state)
            disconnect_all(state)
    finally:
        pyinfra_patch.ORIGINAL["get_fact"] = original
    changed = [bool(next(iter(op.values())).did_change()) for op in ops]
    return {"reads": reads, "changed": changed, "skipped": skipped}


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DLWS_FACT_CACHE", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_the_connector_arguments_a_read_sees_are_kept_per_host_and_inputs():
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    state.init(inventory, Config())
    host = inventory.get_host("@local")

    def fresh():
        fact_cache._IDENTITIES.pop(host, None)
        return fact_cache._identity(host)

    with ctx_state.use(state):
        plain = fact_cache._identity(host)
        host.current_op_global_arguments = {"_sudo": True, "_sudo_user": "lab"}
        sudo = fact_cache._identity(host)
        assert sudo != plain and sudo == fresh() and "'lab'" in sudo
        host.current_op_global_arguments = None
        assert fact_cache._identity(host) == plain == fresh()
        host.data._chdir = "/srv"  # data a deploy sets on the host counts
        assert fact_cache._identity(host) != plain
        assert fact_cache._identity(host) == fresh()
        host.current_op_global_arguments = {"_env": {"DEBIAN_FRONTEND": "noninteractive"}}
        assert fact_cache._identity(host) == fresh()


def test_a_no_change_rerun_reads_the_host_once(cache_home):
    first = _run(cache_home, "v1\n")
    assert first["changed"] == [True, True, True]
    assert len(first["reads"]) > 1  # live reads after the first change
    _run(cache_home, "v1\n")  # learns the reads of files that exist now
    rerun = _run(cache_home, "v1\n")
    assert rerun == {"reads": ["RawFactBatch"], "changed": [False, False, False],
                     "skipped": False}


def test_a_host_without_a_list_of_its_own_reads_once_with_the_last_hosts_list(cache_home):
    """A new host's first run: the request list of the last run of the same deploy on another
    host stands in for its own, so it reads as a host that had its list does (one batch, then
    only what its own changes touched), not fact by fact."""
    own = fact_cache._list_path(type("Host", (), {"name": "@local"})())
    lists = own.parent

    def first_run(keep: tuple[Path, ...]) -> dict:
        """The deploy's files removed (a host that has none yet), and every list but `keep`."""
        for _ in range(2):
            _run(cache_home, "v1\n")
        for path in (cache_home / "a", cache_home / "b", own,
                     *lists.glob("fresh-host-*.json")):
            if path not in keep:
                path.unlink()
        (cache_home / "d").rmdir()
        run = _run(cache_home, "v1\n")
        assert run["changed"] == [True, True, True]
        return run

    had_its_list = first_run(keep=(own,))["reads"]
    assert had_its_list[0] == "RawFactBatch"
    [fresh_list] = lists.glob("fresh-host-*.json")
    assert first_run(keep=(fresh_list,))["reads"] == had_its_list
    # Without the last host's list, the same first run reads fact by fact.
    alone = first_run(keep=())["reads"]
    assert len(alone) > len(had_its_list) + 2, (alone, had_its_list)


def test_after_a_change_that_drops_every_reading_a_fresh_host_reads_again_in_one_batch(
        cache_home):
    """A script (of unknown effect: every reading dropped) runs first; the facts the last
    fresh host's run read live after it come back in one round trip at the first read after it,
    and as the host is after the script: it wrote `a`, so the upload of `a` changes nothing."""
    script = f"printf 'v1\\n' > {cache_home}/a"
    own = fact_cache._list_path(type("Host", (), {"name": "@local"})())
    lists = own.parent

    def fresh_host(forget_where: bool = False) -> dict:
        for path in (cache_home / "a", cache_home / "b", own):
            path.unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (cache_home / "d").rmdir()
        [fresh_list] = lists.glob("fresh-host-*.json")
        if forget_where:  # a list without `after`: as saved before this module kept it
            document = json.loads(fresh_list.read_text())
            for entry in document["requests"]:
                entry.pop("after", None)
            fresh_list.write_text(json.dumps(document))
        run = _run(cache_home, "v1\n", script=script)
        assert run["changed"] == [True, False, True, True], run
        return run

    for _ in range(2):
        _run(cache_home, "v1\n", script=script)
    [fresh_list] = lists.glob("fresh-host-*.json")
    learnt = [entry for entry in json.loads(fresh_list.read_text())["requests"]
              if entry.get("after") == [1]]
    assert len(learnt) >= 3, learnt  # the first run (a fresh host) read them live after it
    fresh_host()  # (a fresh host also reads, before the script, what its absent files need)
    batched = fresh_host()["reads"]
    assert batched.count("RawFactBatch") == 2, batched  # the batch, and one after the script
    assert fresh_host()["reads"] == batched  # the list a fresh host saves keeps what it learnt
    alone = fresh_host(forget_where=True)["reads"]
    assert alone.count("RawFactBatch") == 1, alone
    single = [read for read in alone if read != "RawFactBatch"]
    assert len(single) >= len(batched) - 2 + len(learnt), (alone, batched)


def test_a_change_drops_only_the_readings_it_touches(cache_home):
    for _ in range(2):
        _run(cache_home, "v1\n")
    changed = _run(cache_home, "v2\n")  # the first put changes the host
    assert changed["changed"] == [True, False, False]
    # The upload of `a` left the readings of `d` and `b` valid: the later operations are
    # served from the batch; only `a`'s own reads after its upload are live.
    assert changed["reads"][0] == "RawFactBatch"
    assert (cache_home / "a").read_text() == "v2\n"
    assert len(changed["reads"]) <= 2, changed["reads"]


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "undeclared"])
def test_a_script_drops_only_what_its_role_declares_it_touches(cache_home, declared):
    script = f"echo x > {cache_home}/c"  # a script: its effect cannot be read from it
    for _ in range(3):
        _run(cache_home, "v1\n", script=script)
    run = _run(cache_home, "v1\n", script=script,
               declared=[str(cache_home / "c")] if declared else None)
    # Declared, the later operations' reads stay in the batch but the folder holding `c` (its
    # modification time moved); undeclared, every one is read live.
    if declared:
        assert run["reads"] == ["RawFactBatch", "Directory"], run["reads"]
    else:
        assert len(run["reads"]) > 3, run["reads"]


def test_a_command_of_unknown_effect_drops_every_reading(cache_home):
    snapshot = fact_cache.Snapshot(())
    file_key = fact_cache.request_key(File, {"path": "/etc/dlws/stack.json"})
    other_key = fact_cache.request_key(File, {"path": "/opt/dlws/bin/python"})
    dpkg_key = ("pyinfra.facts.deb:DebPackages", ())
    snapshot.values = {file_key: {}, other_key: {}, dpkg_key: {}}
    fact_cache.forget(snapshot, fact_cache.touched("run_shell_command",
                                                   ["chmod 644 /etc/dlws/stack.json"], {}))
    assert set(snapshot.values) == {other_key, dpkg_key}
    # The parent folder's reading goes with a change inside it.
    snapshot.values = {fact_cache.request_key(Directory, {"path": "/etc/dlws"}): {}}
    fact_cache.forget(snapshot, ("/etc/dlws/stack.json",))
    assert snapshot.values == {}
    for command in ("apt-get install -y hello", "chmod 644 /etc/x && rm -rf /",
                    "chmod 644 etc/x", "sh -c 'chmod 644 /etc/x'", "mv /a /b; reboot",
                    "chmod 644 /etc/$(id)"):
        assert fact_cache.command_paths(command) is None, command
    assert fact_cache.command_paths("chown -h root:lab /home/x") == ("/home/x",)
    assert fact_cache.touched("put_file", ["local", "/etc/x"], {}) == ("/etc/x",)


@pytest.fixture
def record_file(cache_home, monkeypatch):
    path = cache_home.parent / "state" / "converged.json"
    monkeypatch.setattr(fact_cache, "CONVERGED_FILE", str(path))
    monkeypatch.delenv("DLWS_CONVERGED", raising=False)
    return path


def test_a_converged_host_plans_nothing_until_a_reading_moves(cache_home, record_file):
    first = _run(cache_home, "v1\n", "key-1")
    assert first["changed"] == [True, True, True] and not record_file.exists()
    second = _run(cache_home, "v1\n", "key-1")  # plans everything, changes nothing: recorded
    assert second["changed"] == [False, False, False] and not second["skipped"]
    assert record_file.stat().st_mode & 0o777 == 0o600
    assert record_file.parent.stat().st_mode & 0o777 == 0o700
    third = _run(cache_home, "v1\n", "key-1")
    assert third["skipped"] and third["changed"] == []
    # (The second run read some files live, so its record could not stand for them: the third
    # read its stamps, then the batch, and recorded stamps that cover every reading.)
    fourth = _run(cache_home, "v1\n", "key-1")
    assert fourth == {"reads": ["RawFactBatch"], "changed": [], "skipped": True}
    # Drift of a file the operations manage: its reading moved, so the run plans and fixes it.
    (cache_home / "b").write_text("drifted\n")
    fixed = _run(cache_home, "v1\n", "key-1")
    assert not fixed["skipped"] and fixed["changed"] == [False, False, True]
    assert (cache_home / "b").read_text() == "fixed\n"
    (cache_home / "d").chmod(0o700)
    assert _run(cache_home, "v1\n", "key-1")["changed"] == [False, True, False]
    # Another run key (new code, data or version) plans everything.
    _run(cache_home, "v1\n", "key-1")
    assert _run(cache_home, "v1\n", "key-1")["skipped"]
    assert not _run(cache_home, "v1\n", "key-2")["skipped"]


def test_the_stamps_stand_in_for_the_batch_but_never_over_drift(cache_home, record_file):
    for _ in range(3):
        _run(cache_home, "v1\n", "key-1")
    assert _run(cache_home, "v1\n", "key-1") == {"reads": ["RawFactBatch"], "changed": [],
                                                 "skipped": True}
    assert "stamp" in json.loads(record_file.read_text())
    # The same size and the modification time set back (touch -d): the change time moved.
    managed = cache_home / "b"
    before = managed.stat()
    managed.write_text("fixeD\n")
    os.utime(managed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert managed.stat().st_size == before.st_size
    fixed = _run(cache_home, "v1\n", "key-1")
    assert not fixed["skipped"] and fixed["changed"] == [False, False, True]
    assert managed.read_text() == "fixed\n"
    # A record whose stamps are not this run's: the batch runs (two reads), and plans.
    for _ in range(2):
        _run(cache_home, "v1\n", "key-1")
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "stamp": "0" * 64}))
    run = _run(cache_home, "v1\n", "key-1")
    assert run["reads"] == ["RawFactBatch", "RawFactBatch"] and run["skipped"]
    # Turned off, the stamps are not read.
    os.environ["DLWS_STAMPS"] = "0"
    try:
        assert _run(cache_home, "v1\n", "key-1")["reads"] == ["RawFactBatch"]
    finally:
        del os.environ["DLWS_STAMPS"]


def test_a_skipped_run_parses_no_stamped_reading_it_does_not_use(cache_home, record_file,
                                                                monkeypatch):
    """On the stamps alone, under the same run key, the record's digest of the stamped readings
    stands for theirs: none is parsed unless asked for. Anything else parses them all."""
    parsed = []
    reparse = fact_cache.reparse

    def counting(request, status, lines):
        parsed.append(request[0].__name__)
        return reparse(request, status, lines)

    monkeypatch.setattr(fact_cache, "reparse", counting)
    for _ in range(3):
        _run(cache_home, "v1\n", "key-1")
    record = json.loads(record_file.read_text())
    assert re.fullmatch(r"[0-9a-f]{64}", record["stamped"])
    parsed.clear()
    assert _run(cache_home, "v1\n", "key-1")["skipped"]
    assert parsed == []
    # Another run key (new code, new data): planned, each stamped reading the operations ask
    # for parsed.
    run = _run(cache_home, "v1\n", "key-2")
    assert not run["skipped"] and run["changed"] == [False, False, False]
    assert "Sha1File" in parsed and "Arch" in parsed
    for _ in range(2):
        _run(cache_home, "v1\n", "key-2")
    assert _run(cache_home, "v1\n", "key-2")["skipped"]
    # A record whose digest of the stamped readings is not theirs: planned, never skipped.
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({**record, "stamped": "0" * 64}))
    assert not _run(cache_home, "v1\n", "key-2")["skipped"]
    # A record without one: parsed, and skipped as the readings match.
    for _ in range(2):
        _run(cache_home, "v1\n", "key-2")
    record = json.loads(record_file.read_text())
    record_file.write_text(json.dumps({k: v for k, v in record.items() if k != "stamped"}))
    parsed.clear()
    assert _run(cache_home, "v1\n", "key-2")["skipped"] and "Sha1File" in parsed


def test_a_recorded_reading_is_parsed_as_the_batch_parses_it_command_state_and_all(monkeypatch):
    """A fact's command is built once per run and reused for a fleet's other hosts, what it
    left on the instance included, except where reusing it could be wrong."""

    class Keeps(FactBase):  # as pyinfra's Sha1File: its parser reads what command() kept
        built = 0

        def command(self, path):
            type(self).built += 1
            self.path = path
            return sh("cat {}", path)

        def process(self, output):
            return f"{self.path}: {output[0]}"

    class Plain(FactBase):
        built = 0

        def command(self, path):
            type(self).built += 1
            return sh("cat {}", path)

        def process(self, output):
            return output[0]

    class Random(FactBase):  # a command with a part of its own each time (a marker)
        built = 0

        def command(self):
            type(self).built += 1
            return sh("echo {}", os.urandom(4).hex())

        def process(self, output):
            return output[0]

    class AsksTheHost(FactBase):  # as pyinfra's Mounts: its command follows another fact
        built = 0

        def command(self):
            type(self).built += 1
            kernel = fact_cache.get_fact(type("AHost", (), {})(), KernelVersion)
            return "cat /proc/self/mountinfo" if kernel == "Linux" else "mount -p"

        def process(self, output):
            return output[0]

    monkeypatch.setitem(pyinfra_patch.ORIGINAL, "get_fact", lambda *_, **__: "Linux")
    fact_cache.install()
    monkeypatch.setattr(fact_cache, "_BUILT", {})
    sha1 = (Sha1File, {"path": "/etc/a"})
    for _ in range(3):  # a fleet's hosts, one after another
        assert fact_cache.reparse((Keeps, {"path": "/a"}), "0", ["x"]) == ("ok", "/a: x")
        assert fact_cache.reparse((Keeps, {"path": "/b"}), "0", ["y"]) == ("ok", "/b: y")
        assert fact_cache.reparse((Plain, {"path": "/a"}), "0", ["z"]) == ("ok", "z")
        assert fact_cache.reparse(sha1, "0", ["0" * 40 + "  /etc/a"]) == ("ok", "0" * 40)
        assert fact_cache.reparse((Random, {}), "0", ["r"]) == ("ok", "r")
        assert fact_cache.reparse((AsksTheHost, {}), "0", ["m"]) == ("ok", "m")
    # Built twice at first (the two builds compared), then reused; never reused otherwise.
    assert (Plain.built, Keeps.built, Random.built, AsksTheHost.built) == (2, 4, 4, 4)
    # Reused as built: the same command text for the batch.
    fact = Plain()
    assert str(fact_cache._command_of(fact, {"path": "/a"})[0]) == "cat /a"


def test_a_decision_on_the_clock_holds_the_record_only_until_it_flips(cache_home, record_file):
    for _ in range(3):
        _run(cache_home, "v1\n", "key-1", clock=3600)
    assert _run(cache_home, "v1\n", "key-1", clock=3600)["skipped"]
    # A decision that held for a moment only: recorded, but expired by the next run.
    assert "until" in json.loads(record_file.read_text())
    _run(cache_home, "v1\n", "key-2", clock=0.5)
    assert json.loads(record_file.read_text())["run"] == "key-2"
    time.sleep(1.6)  # the host's clock (pyinfra's Date) reads whole seconds
    assert not _run(cache_home, "v1\n", "key-2", clock=0.5)["skipped"]


def test_converged_runs_can_be_turned_off(cache_home, record_file, monkeypatch):
    for _ in range(2):
        _run(cache_home, "v1\n", "key-1")
    monkeypatch.setenv("DLWS_CONVERGED", "0")
    assert _run(cache_home, "v1\n", "key-1")["changed"] == [False, False, False]


def test_the_cache_can_be_turned_off(cache_home, monkeypatch):
    for _ in range(2):
        _run(cache_home, "v1\n")
    monkeypatch.setenv("DLWS_FACT_CACHE", "0")
    assert "RawFactBatch" not in _run(cache_home, "v1\n")["reads"]


def test_a_saved_list_names_only_fact_classes_with_plain_arguments(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('{"requests": [{"fact": "os:system", "kwargs": {}},'
                    ' {"fact": "pyinfra.facts.files:File", "kwargs": {"path": {"x": 1}}},'
                    ' {"fact": "pyinfra.facts.server:Date", "kwargs": {}},'
                    ' {"fact": "pyinfra.facts.files:File", "kwargs": {"path": "/etc/x"}}]}')
    assert fact_cache.load_requests(path) == [(Date, {}), (File, {"path": "/etc/x"})]
    path.write_text("not json")
    assert fact_cache.load_requests(path) == []
    # `after` (when the saving run read a fact live): a list of positive counts, else none.
    afters = ['[1, 3]', '"1"', '[0]', '[-1]', '[true]', '[1.5]', '7', '[100001]', '{"a": 1}',
              '[' + ', '.join(['1'] * 1001) + ']']
    path.write_text('{"requests": [' + ", ".join(
        f'{{"fact": "pyinfra.facts.files:File", "kwargs": {{"path": "/x{n}"}}, "after": {a}}}'
        for n, a in enumerate(afters)) + "]}")
    listed = fact_cache.load_list(path)
    assert [request for request, _ in listed] == [(File, {"path": f"/x{n}"})
                                                  for n in range(len(afters))]
    assert [after for _, after in listed] == [(1, 3)] + [()] * (len(afters) - 1)


@pytest.fixture
def fake_fleet(tmp_path, monkeypatch):
    """`fake_fleet(names, parallel, delay=0)`: (inventory, state, reads) of @fake hosts with a
    fresh fact cache; `reads` lists each host read through pyinfra's own get_fact."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DLWS_FACT_CACHE", raising=False)
    reads: list[str] = []
    original = pyinfra_patch.ORIGINAL["get_fact"]

    def counting(self, fact_cls, *args, **kwargs):
        reads.append(self.name)
        return original(self, fact_cls, *args, **kwargs)

    monkeypatch.setitem(pyinfra_patch.ORIGINAL, "get_fact", counting)

    def make(names: list[str], parallel: int, delay: float = 0):
        inventory = Inventory(([(name, {"fake_delay": delay, "fake_delay_jitter": 0})
                                for name in names], {}))
        config = Config(PARALLEL=parallel)
        state = State(inventory, config)
        state.init(inventory, config)
        return inventory, state, reads

    return make


def test_the_first_prefetch_reads_every_host_at_once(fake_fleet):
    """Where a deploy file's top level runs host by host (a caller's own loop): the first
    prefetch of a run reads every active host together, each in a greenlet, even with
    --parallel 1 (no deadlock)."""
    names = [f"@fake/prefetch-{i}" for i in range(3)]
    inventory, state, reads = fake_fleet(names, parallel=1)
    with ctx_state.use(state):
        state.set_stage(StateStage.Connect)
        connect_all(state)
        state.set_stage(StateStage.Prepare)
        first = inventory.get_host(names[0])
        with ctx_host.use(first):
            from pyinfra import host as proxy  # the deploy file's `host`: a context proxy

            fact_cache.prefetch(proxy, [(Arch, {})])
            assert sorted(fact_cache._SNAPSHOTS[state]) == sorted(names)
            assert sorted(reads) == sorted(names)  # one batched read per host
        for name in names[1:]:
            with ctx_host.use(inventory.get_host(name)):
                fact_cache.prefetch(inventory.get_host(name), [(Arch, {})])
    assert sorted(reads) == sorted(names)  # nothing read twice


def test_hosts_loaded_side_by_side_each_wait_for_their_own_batch(fake_fleet, monkeypatch):
    """pyinfra 3.10 loads the deploy file of many hosts at once, in greenlets of its pool
    (pyinfra_cli.util._parallel_load_hosts): many reach prefetch before any batch is read. One
    of them reads every host; each returns only once its own host's batch is in (no fact read
    live beside it), and the run keeps one callback handler (one request list and one record
    written per host, not one per host that called first)."""
    names = [f"@fake/side-by-side-{i}" for i in range(6)]
    inventory, state, reads = fake_fleet(names, parallel=4, delay=0.05)

    def slow_read(run, batch, keys, reparse, try_stamps):  # a batch that takes a while
        reads.append("batch")
        gevent.sleep(0.05)
        return stamps.Found([("ok", {}), *(("ok", "x86_64") for _ in batch[1:])], None, {},
                            "batch")

    monkeypatch.setattr(fact_cache.stamps, "read", slow_read)
    served: dict[str, bool] = {}

    def load_file(each):  # what _parallel_load_hosts runs for each host
        with ctx_host.use(each):
            fact_cache.prefetch(host_proxy, [(Arch, {})])
            missing = object()
            served[each.name] = fact_cache.cached(each, Arch, {}, missing=missing) is not missing

    with ctx_state.use(state):
        state.set_stage(StateStage.Connect)
        connect_all(state)
        state.set_stage(StateStage.Prepare)
        greenlets = [state.pool.spawn(load_file, each) for each in inventory.get_active_hosts()]
        gevent.joinall(greenlets, raise_error=True)
    assert served == dict.fromkeys(names, True), served
    assert reads == ["batch"] * len(names)  # one batched read per host, none live
    handlers = [h for h in state.callback_handlers
                if isinstance(h, fact_cache._SaveOnDisconnect)]
    assert len(handlers) == 1, handlers


def test_the_readings_digest_follows_values_not_their_order_or_access_times():
    def digest(values: dict) -> str:
        snapshot = fact_cache.Snapshot(())
        for key, value in values.items():
            snapshot.states[key] = "ok"
            snapshot.values[key] = value
        return fact_cache.readings_digest(snapshot, list(values))

    users, files, odd = ("Users", ()), ("File", (("path", "/etc/a"),)), ("Odd", ())
    base = {users: {"lab": {"groups": {"lab", "sudo"}, "home": "/home/lab"}},
            files: {"mode": 644, "atime": 1, "mtime": 2},
            odd: {1: "a", "b": (1, 2), ("t",): {"in": {"atime": 5, "x": {3, 1, 2}}}}}
    first = digest(base)
    # The same readings in another order, sets built in another order: the same digest.
    again = {odd: {("t",): {"in": {"x": {2, 3, 1}, "atime": 9}}, "b": (1, 2), 1: "a"},
             files: {"mtime": 2, "atime": 7, "mode": 644},
             users: {"lab": {"home": "/home/lab", "groups": {"sudo", "lab"}}}}
    assert digest(again) == first
    # Any other change, at any depth, is a new digest.
    for key, value in [(users, {"lab": {"groups": {"lab"}, "home": "/home/lab"}}),
                       (files, {"mode": 600, "atime": 1, "mtime": 2}),
                       (files, {"mode": 644, "atime": 1, "mtime": 3}),
                       (odd, {1: "a", "b": (1, 2), ("t",): {"in": {"x": {3, 1}}}}),
                       (odd, {1: "a", "b": (2, 1), ("t",): {"in": {"x": {3, 1, 2}}}})]:
        assert digest({**base, key: value}) != first, (key, value)
    assert digest({users: base[users], files: base[files]}) != first
