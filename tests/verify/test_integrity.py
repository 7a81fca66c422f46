"""The content checks' own logic on files made here: RECORDs, dpkg's output, apt's settings."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from dlws.controller_code import Script
from dlws.controller_code import parse as parse_runner
from dlws.secrets import secret_files
from dlws.verify import integrity, test_security
from tests.verify.test_checks import Out, StandIn, target

RECORD_CHECK = Path(__file__).resolve().parents[2] / "verify/host/dlws_record_check.py"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


@pytest.fixture()
def environment(tmp_path):
    """A prefix with one distribution ("pkg 1.0") installed as pip writes it."""
    site = tmp_path / "lib" / "python{}.{}".format(*sys.version_info[:2]) / "site-packages"
    (site / "pkg").mkdir(parents=True)
    files = {"pkg/__init__.py": b"VALUE = 1\n", "pkg/data.txt": b"data\n"}
    for name, data in files.items():
        (site / name).write_bytes(data)
    info = site / "pkg-1.0.dist-info"
    info.mkdir()
    rows = [f"{name},{_digest(data)},{len(data)}" for name, data in files.items()]
    (info / "RECORD").write_text("\n".join([*rows, "pkg-1.0.dist-info/RECORD,,"]) + "\n")
    # Compiled as pip and uv compile (py_compile, the source's mtime and size in the header).
    py_compile.compile(str(site / "pkg" / "__init__.py"), doraise=True)
    return tmp_path, site


def plant_bytecode(source: Path, code: str, optimization: str = "", name: str = "") -> Path:
    """A compiled file Python would load in place of `source` (its header carries the source's
    mtime and size) holding other code (compiled under another file name, given `name`)."""
    compiled = Path(importlib.util.cache_from_source(str(source), optimization=optimization))
    info = source.stat()
    compiled.write_bytes(importlib._bootstrap_external._code_to_timestamp_pyc(
        compile(code, name or str(source), "exec", dont_inherit=True), info.st_mtime,
        info.st_size))
    return compiled


def record_bytecode(prefix: Path, how: str) -> dict:
    out = subprocess.run([sys.executable, "-I", "-S", "-B", str(RECORD_CHECK), str(prefix),
                          "record-bytecode", how], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def record_check(prefix: Path, mode: str = "full", *removed: str) -> dict:
    out = subprocess.run([sys.executable, "-I", "-S", "-B", str(RECORD_CHECK), str(prefix), mode,
                          *removed],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_an_untouched_environment_has_no_problem(environment):
    prefix, _ = environment
    report = record_check(prefix)
    assert report["problems"] == [] and report["files"] == 3, report


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_code_appended_to_a_listed_file_is_found(environment, mode):
    prefix, site = environment
    with open(site / "pkg" / "__init__.py", "a") as handle:
        handle.write("import os; os.system('id')\n")
    assert record_check(prefix, mode)["problems"] == [
        "pkg-1.0: pkg/__init__.py: 37 bytes, RECORD says 10"]


def test_same_size_change_is_found_by_its_digest_not_in_fast_mode_with_an_old_mtime(environment):
    prefix, site = environment
    path = site / "pkg" / "__init__.py"
    before = path.stat()
    path.write_bytes(b"VALUE = 2\n")
    # (a later mtime than its compiled file's header: that file is stale, never loaded)
    os.utime(path, (before.st_atime, before.st_mtime + 30))
    assert record_check(prefix)["problems"] == ["pkg-1.0: pkg/__init__.py: sha256 differs from "
                                                "its RECORD"]
    # fast mode: the same change, mtime newer than the RECORD, is found; reset, it is not
    # (the documented limit of verify_integrity = "fast").
    os.utime(site / "pkg-1.0.dist-info" / "RECORD", (before.st_atime, before.st_mtime - 10))
    assert "pkg/__init__.py: modified after the install" in " ".join(
        record_check(prefix, "fast")["problems"])
    for name in ("__init__.py", "data.txt"):
        os.utime(site / "pkg" / name, (before.st_atime, before.st_mtime - 20))
    assert record_check(prefix, "fast")["problems"] == []


def test_every_byte_of_every_file_counts_past_the_chunks_and_the_mapped_sizes(tmp_path):
    """Files over the check's read block (hashed as mapped) and more rows than a worker's chunk:
    a one-byte change deep in a large file, or in any small one, is found, named in RECORD
    order."""
    site = tmp_path / "lib" / "python{}.{}".format(*sys.version_info[:2]) / "site-packages"
    (site / "big").mkdir(parents=True)
    files = {f"big/part{i:03d}.py": f"VALUE = {i}\n".encode() for i in range(700)}
    files.update({f"big/blob{i}.so": bytes(range(256)) * (3 * 4096 + i) for i in range(3)})
    for name, data in files.items():
        (site / name).write_bytes(data)
    info = site / "big-1.0.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("\n".join(
        [*(f"{name},{_digest(data)},{len(data)}" for name, data in files.items()),
         "big-1.0.dist-info/RECORD,,"]) + "\n")
    assert record_check(tmp_path)["problems"] == []
    for name, offset in (("big/blob1.so", 3 * 1024 * 1024 - 7), ("big/part650.py", 8),
                         ("big/part010.py", 8)):
        data = bytearray(files[name])
        data[offset] ^= 1
        (site / name).write_bytes(bytes(data))
    report = record_check(tmp_path)
    assert report["files"] == 704 and report["bytes_hashed"] == sum(map(len, files.values()))
    assert report["problems"] == [f"big-1.0: {name}: sha256 differs from its RECORD" for name in
                                  ("big/part010.py", "big/part650.py", "big/blob1.so")]


def test_unlisted_importable_files_and_missing_ones_are_named(environment):
    prefix, site = environment
    (site / "zz_evil.pth").write_text("import os\n")
    (site / "pkg" / "extra.py").write_text("x = 1\n")
    (site / "pkg" / "__pycache__" / "orphan.cpython-311.pyc").write_bytes(b"x")
    (site / "pkg" / "data.txt").unlink()
    (site / "pkg" / "notes.txt").write_text("not importable: not reported\n")
    assert sorted(record_check(prefix)["problems"]) == [
        "pkg-1.0: pkg/data.txt: missing",
        "pkg/__pycache__/orphan.cpython-311.pyc: importable, listed by no RECORD",
        "pkg/extra.py: importable, listed by no RECORD",
        "zz_evil.pth: importable, listed by no RECORD"]


PLANTED = ("pkg/__pycache__/__init__.{tag}.pyc: compiled code that neither the deploy recorded "
           "nor its source compiles to (Python would run it in place of the source)")


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("recorded", [False, True], ids=["no-record", "recorded"])
def test_bytecode_that_is_not_its_sources_is_found_whatever_its_header_says(environment, mode,
                                                                          recorded):
    """RECORDs list no digest for __pycache__ files, and Python loads one whose header matches
    its source, whatever code it holds: each one it would load must be the deploy's record's or
    what its source compiles to. Without a record each is compiled again; with one, none is."""
    prefix, site = environment
    source = site / "pkg" / "__init__.py"
    genuine = Path(importlib.util.cache_from_source(str(source))).stat().st_size
    if recorded:
        assert record_bytecode(prefix, "installed")["recorded"] == 1
    report = record_check(prefix, mode)
    assert report["problems"] == [], report
    assert report["bytecode"] == {"files": 1, "recorded": recorded,
                                  "compiled_to_check": 0 if recorded else 1}, report
    # Python does run the planted code, the source untouched (so the RECORD check passes it).
    planted = plant_bytecode(source, "VALUE = 'planted'\n")
    ran = subprocess.run([sys.executable, "-B", "-c", "import pkg; print(pkg.VALUE)"],
                         cwd=site, capture_output=True, text=True, check=True)
    assert ran.stdout == "planted\n"
    tag = sys.implementation.cache_tag
    relative = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/"
    report = record_check(prefix, mode)
    assert report["problems"] == [relative + PLANTED.format(tag=tag)], report
    # Of the recorded file's very size: its digest tells (in fast mode, its mtime after the
    # record's).
    planted.unlink()
    if recorded:
        stamp = (prefix / "dlws-bytecode.json").stat().st_mtime - 10
        os.utime(prefix / "dlws-bytecode.json", (stamp, stamp))
    same = plant_bytecode(source, "VALUE = 2\n")
    assert same.stat().st_size == genuine
    assert record_check(prefix, mode)["problems"] == [relative + PLANTED.format(tag=tag)]
    # An optimised file (`python -O` loads it).
    same.unlink()
    plant_bytecode(source, "VALUE = 1; import os\n", optimization="1")
    assert [p.replace(".opt-1", "") for p in record_check(prefix, mode)["problems"]] == [
        relative + PLANTED.format(tag=tag)]


def test_stale_or_foreign_bytecode_is_not_a_problem_and_the_record_is_root_only(environment):
    """A compiled file whose header no longer matches its source, or of another interpreter,
    is never loaded (Python compiles the source again): not reported. A record others can
    write is not used, and says so."""
    prefix, site = environment
    source = site / "pkg" / "__init__.py"
    plant_bytecode(source, "VALUE = 'planted'\n")
    info = source.stat()
    os.utime(source, (info.st_atime, info.st_mtime + 5))  # the header's mtime no longer matches
    other = site / "pkg" / "__pycache__" / "__init__.cpython-20.pyc"
    other.write_bytes(b"not this interpreter's")
    report = record_check(prefix)
    assert report["problems"] == [] and report["bytecode"]["files"] == 1, report
    record_bytecode(prefix, "installed")
    (prefix / "dlws-bytecode.json").chmod(0o666)
    assert record_check(prefix)["problems"] == [
        "dlws-bytecode.json: not a file that root alone can write (owner 0, mode 666); not used"]


def test_the_same_code_written_otherwise_is_its_sources(environment):
    """marshal's bytes also depend on the writing process (its reference counts) and carry the
    file name it was compiled under: where the bytes differ, the code objects are compared."""
    prefix, site = environment
    source = site / "pkg" / "__init__.py"
    plant_bytecode(source, source.read_text(), name="/build/elsewhere/pkg/__init__.py")
    report = record_check(prefix)
    assert report["problems"] == [] and report["bytecode"]["compiled_to_check"] == 1, report


def test_a_compiled_file_that_is_a_link_or_a_fifo_is_named_and_not_followed(environment,
                                                                            tmp_path):
    """Python would read through a link (or wait on a FIFO) where its compiled file is: the
    check neither follows nor waits, and names both."""
    prefix, site = environment
    compiled = Path(importlib.util.cache_from_source(str(site / "pkg" / "__init__.py")))
    elsewhere = tmp_path / "elsewhere.pyc"
    elsewhere.write_bytes(compiled.read_bytes())
    compiled.unlink()
    compiled.symlink_to(elsewhere)
    fifo = compiled.with_name(compiled.name.replace(".pyc", ".opt-1.pyc"))
    os.mkfifo(fifo)
    relative = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/pkg/"
    assert sorted(record_check(prefix)["problems"]) == sorted([
        f"{relative}__pycache__/{compiled.name}: cannot be read (Too many levels of symbolic "
        "links)",
        f"{relative}__pycache__/{fifo.name}: compiled file is not a regular file"])


def test_a_record_written_after_the_fact_keeps_only_what_the_sources_compile_to(environment):
    """`checked` (an environment compiled before the deploy kept a record): a planted file is
    left out of the record, so the check still names it; `installed` takes the files as pip or
    uv just wrote them."""
    prefix, site = environment
    plant_bytecode(site / "pkg" / "__init__.py", "VALUE = 'planted'\n")
    written = record_bytecode(prefix, "checked")
    tag = sys.implementation.cache_tag
    relative = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/"
    assert written == {"recorded": 0, "left_out": [f"{relative}pkg/__pycache__/__init__.{tag}.pyc"],
                       "left_out_count": 1}, written
    assert record_check(prefix)["problems"] == [relative + PLANTED.format(tag=tag)]
    py_compile.compile(str(site / "pkg" / "__init__.py"), doraise=True)
    assert record_bytecode(prefix, "checked")["recorded"] == 1
    document = json.loads((prefix / "dlws-bytecode.json").read_text())
    assert oct((prefix / "dlws-bytecode.json").stat().st_mode & 0o777) == "0o644"
    assert list(document["files"]) == [f"{relative}pkg/__pycache__/__init__.{tag}.pyc"]
    assert record_check(prefix)["bytecode"] == {"files": 1, "recorded": True,
                                                "compiled_to_check": 0}


def test_files_the_deploy_removes_on_purpose_may_be_absent_but_no_code(environment):
    """The hub's deploy removes ipykernel's own kernel spec (data files its RECORD lists under
    the prefix's share/): absent there is no problem when the check is told the folder; an
    importable file listed there still is, and so is the same absence anywhere else."""
    prefix, site = environment
    record = site / "pkg-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "../../../share/kernels/py/kernel.json,sha256=AAAA,2\n"
                      "../../../share/kernels/py/hook.py,sha256=AAAA,2\n"
                      "../../../share/other/logo.png,sha256=AAAA,2\n")
    missing = ["pkg-1.0: ../../../share/kernels/py/kernel.json: missing",
               "pkg-1.0: ../../../share/kernels/py/hook.py: missing",
               "pkg-1.0: ../../../share/other/logo.png: missing"]
    assert record_check(prefix)["problems"] == missing
    assert record_check(prefix, "full", "share/kernels/py")["problems"] == missing[1:]
    assert record_check(prefix, "fast", "/share/kernels/py/")["problems"] == missing[1:]


def test_a_record_path_outside_the_environment_is_refused(environment):
    prefix, site = environment
    record = site / "pkg-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "../../../../../etc/passwd,sha256=AAAA,1\n")
    assert any("outside the environment" in p for p in record_check(prefix)["problems"])


def test_the_runner_runs_the_controllers_copy_and_refuses_another(tmp_path):
    script = Script("probe.py", b"import sys; print(sys.argv[1:], sys.flags.isolated)\n")
    out = subprocess.run(script.command(sys.executable, {"a": ["x"]}), shell=True,
                         capture_output=True, text=True)
    document = parse_runner(out.stdout)
    assert document["sha256"] == script.sha256
    assert document["runs"]["a"][:2] == [0, "['x'] 1\n"], document
    assert out.returncode == 0
    # A command that fails fails the runner (a deploy's operation with it), its report kept.
    failing = Script("probe.py", b"import sys; print('half'); sys.exit(3)\n")
    out = subprocess.run(failing.command(sys.executable, {"a": [], "b": []}), shell=True,
                         capture_output=True, text=True)
    assert out.returncode == 1 and parse_runner(out.stdout)["runs"]["b"][:2] == [3, "half\n"]
    forged = script.command(sys.executable, {"a": []}).replace(script.sha256, "0" * 64)
    out = subprocess.run(forged, shell=True, capture_output=True, text=True)
    assert out.returncode == 2 and "differs from the controller's" in out.stdout
    with pytest.raises(ValueError):
        script.command(sys.executable, {}, flags=("-B",))


def test_dpkg_verify_names_package_and_file_and_leaves_conffiles_out():
    listing = ("??5??????   /usr/bin/lspci\nmissing     /usr/bin/setpci\n"
               "??5?????? c /etc/sysctl.conf\n")
    host = StandIn(runs={"dpkg --verify": Out(stdout=listing),
                         "dpkg -S": Out(stdout="pciutils: /usr/bin/lspci\n"
                                               "pciutils: /usr/bin/setpci\n")})
    problems, error = integrity.dpkg_problems(host)
    assert not error
    assert problems == ["pciutils: /usr/bin/lspci: changed (??5??????)",
                        "pciutils: /usr/bin/setpci: missing"]


@pytest.mark.parametrize(("line", "weak"), [
    ('APT::Get::AllowUnauthenticated "true";', True),
    ('APT::Get::allow-unauthenticated "yes";', True),
    ('Acquire::AllowInsecureRepositories "1";', True),
    ('Acquire::AllowDowngradeToInsecureRepositories "on";', True),
    ('Acquire::https::example.org::Trusted "true";', True),
    ('Acquire::AllowInsecureRepositories "0";', False),
    ('Acquire::AllowWeakRepositories "false";', False),
    ('Dir::Etc::trusted "trusted.gpg";', False),
])
def test_apt_settings_that_switch_checks_off(line, weak):
    host = StandIn(runs={"apt-config": Out(stdout=line + "\n")})
    if weak:
        with pytest.raises(AssertionError, match="switches signature checks off"):
            test_security.test_apt_config_keeps_signature_checks(host)
    else:
        test_security.test_apt_config_keeps_signature_checks(host)


def test_every_secret_file_is_declared_once_with_a_private_mode():
    declared = secret_files(target("ws", notebooks_state_dir="/var/lib/dlws/hub",
                                   notebooks_config_dir="/etc/dlws/hub"))
    paths = [s.path for s in declared]
    assert len(paths) == len(set(paths)) and len(paths) == 7, paths
    assert all(s.owner == "root" and not s.mode_bits & 0o007 for s in declared), declared
