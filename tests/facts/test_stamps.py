"""The stamp tier (dlws.facts.stamps): what a stamp covers, run with this machine's find."""

from __future__ import annotations

import base64
import os
import subprocess
import zlib

import pytest
from pyinfra.facts.files import File, Sha1File
from pyinfra.facts.server import Date, Users

from dlws.facts import stamps
from dlws.facts.python import VenvPackages
from dlws.facts.storage import BlockDevice
from dlws.facts.system import SystemdRunning


def stamp_of(request) -> str:
    """The Stamps fact's value for `request`'s stamps, its command run by sh here."""
    fact_cls, kwargs = stamps.stamp_request([request])
    fact = fact_cls()
    out = subprocess.run(["sh", "-c", fact.command(**kwargs)], capture_output=True, text=True,
                         check=True)
    return fact.process(out.stdout.splitlines())


def test_only_declared_readings_are_stamped():
    assert stamps.stamps_of((Sha1File, {"path": "/etc/pip.conf"})) == (
        ("entry", "/etc/pip.conf"),)
    assert stamps.stamps_of((VenvPackages, {"prefix": "/opt/dlws/venv"})) == (
        ("venv", "/opt/dlws/venv"),)
    assert ("entry", "/etc/shadow") in stamps.stamps_of((Users, {}))
    # No files decide these: read beside the stamps, every run.
    for request in [(Date, {}), (SystemdRunning, {}), (BlockDevice, {"device": "/dev/sdb"}),
                    (File, {"path": "/etc/a b"}), (File, {"path": "/etc/../shadow"}),
                    (File, {"path": "etc/x"})]:
        assert stamps.stamps_of(request) is None, request


def test_a_stamp_moves_with_bytes_mode_and_ctime_but_not_with_a_read(tmp_path):
    managed = tmp_path / "pip.conf"
    managed.write_text("[global]\nindex-url = https://pypi.org/simple\n")
    request = (Sha1File, {"path": str(managed)})
    first = stamp_of(request)
    assert stamp_of(request) == first
    managed.read_text()  # a read moves the access time only
    assert stamp_of(request) == first
    # Bytes changed in place, the size and the modification time kept: the change time moved.
    before = managed.stat()
    with open(managed, "r+b") as stream:
        stream.seek(1)
        stream.write(b"G")
    os.utime(managed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert managed.stat().st_size == before.st_size
    second = stamp_of(request)
    assert second != first
    managed.chmod(0o600)
    assert stamp_of(request) != second
    # A file that is gone has a stamp of its own (find's error line).
    gone = stamp_of(request)
    managed.unlink()
    assert stamp_of(request) != gone


def test_a_folder_tree_stamp_sees_a_file_edited_below_it(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    source = tmp_path / "sources.list.d" / "a.sources"
    source.write_text("Types: deb\n")
    request = (stamps.Stamps, {})
    trees = {"entries": (), "trees": (str(tmp_path),), "venvs": ()}
    fact = request[0]()

    def read() -> str:
        out = subprocess.run(["sh", "-c", fact.command(**trees)], capture_output=True,
                             text=True, check=True)
        return fact.process(out.stdout.splitlines())

    first = read()
    source.write_text("Types: deb-src\n")
    assert read() != first


def test_one_find_reads_entries_and_trees_each_as_its_kind(tmp_path):
    """Entries and trees share one find: an entry is not walked below, and an entry inside a
    tree does not cut the tree's walk short."""
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    below = tmp_path / "tree" / "sub" / "x"
    below.write_text("1\n")
    (tmp_path / "solo").mkdir()
    inner = tmp_path / "solo" / "inner"
    inner.write_text("1\n")
    kwargs = {"entries": (str(tmp_path / "tree" / "sub"), str(tmp_path / "solo")),
              "trees": (str(tmp_path / "tree"),), "venvs": ()}
    fact = stamps.Stamps()

    def read() -> str:
        out = subprocess.run(["sh", "-c", fact.command(**kwargs)], capture_output=True,
                             text=True, check=True)
        return fact.process(out.stdout.splitlines())

    first = read()
    inner.write_text("2\n")  # below an entry only: the entry's folder did not change
    assert read() == first
    below.write_text("22\n")  # below an entry that is also below a tree
    assert read() != first


def test_an_environment_s_stamp_follows_its_distributions_not_their_modules(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    (site / "pkg" / "deep").mkdir(parents=True)
    module = site / "pkg" / "deep" / "mod.py"
    module.write_text("x = 1\n")
    (site / "pkg-1.0.dist-info" / "licenses").mkdir(parents=True)
    record = site / "pkg-1.0.dist-info" / "RECORD"
    record.write_text("pkg/deep/mod.py,,\n")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    request = (VenvPackages, {"prefix": str(tmp_path / "venv")})
    first = stamp_of(request)
    module.write_text("x = 2\n")  # a module's bytes: no distribution changed
    assert stamp_of(request) == first
    record.write_text("pkg/deep/mod.py,sha256=x,7\n")
    second = stamp_of(request)
    assert second != first
    (site / "pkg-1.0.dist-info" / "licenses" / "LICENSE").write_text("MIT\n")
    third = stamp_of(request)
    assert third != second
    (site / "other").mkdir()  # a new entry in site-packages
    assert stamp_of(request) != third


def test_an_environment_that_sees_the_system_packages_is_never_stamped_twice_alike(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("include-system-site-packages = false\n")
    request = (VenvPackages, {"prefix": str(venv)})
    assert stamp_of(request) == stamp_of(request)
    (venv / "pyvenv.cfg").write_text("include-system-site-packages = true\n")
    assert stamp_of(request) != stamp_of(request)
    # As Python's site reads the file: any case, spaces around the key and the value, the last
    # line without its newline.
    for text in ("home = /usr/bin\n Include-System-Site-Packages=TRUE\n",
                 "include-system-site-packages = True  \nversion = 3.11.2\n",
                 "home = /usr/bin\ninclude-system-site-packages = true"):
        (venv / "pyvenv.cfg").write_text(text)
        assert stamp_of(request) != stamp_of(request), text
    for text in ("include-system-site-packages = false\n", "home = /usr/bin"):
        (venv / "pyvenv.cfg").write_text(text)
        assert stamp_of(request) == stamp_of(request), text
    (venv / "pyvenv.cfg").unlink()  # no file: a stamp of its own, the same each time
    assert stamp_of(request) == stamp_of(request)


def test_a_record_s_outputs_are_bounded_and_checked():
    outputs = {'["x", []]': ("0", ["line"])}
    assert stamps.unpack(stamps.pack(outputs)) == outputs
    bomb = base64.b64encode(zlib.compress(b"[" * (stamps.UNPACKED_LIMIT + 10))).decode()
    assert stamps.unpack(bomb) is None
    for bad in (None, 7, "not base64!", base64.b64encode(zlib.compress(b'{"k": [0, 1]}'))
                .decode(), base64.b64encode(zlib.compress(b"[]")).decode()):
        assert stamps.unpack(bad) is None, bad


@pytest.mark.parametrize("stamp", [None, ""])
def test_no_stamp_no_record_fields(stamp):
    assert stamps.record_fields({}, stamp, []) == {}


def test_the_host_digests_its_stamps_and_nothing_else_stands_for_one(tmp_path):
    """One line comes back (sha256sum's), whatever the count of entries; output that is not
    that line (a host without sha256sum, a shell that said something else) is no stamp, so the
    whole batch is read."""
    for name in range(50):
        (tmp_path / f"f{name}").write_text("x\n")
    fact = stamps.Stamps()
    command = fact.command(entries=(), trees=(str(tmp_path),), venvs=())
    out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    assert len(out.stdout.splitlines()) == 1
    assert len(fact.process(out.stdout.splitlines())) == 64
    missing = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                             env={"PATH": str(tmp_path / "nothing")})
    assert fact.process(missing.stdout.splitlines()) == ""
    for output in (["0" * 64], ["0" * 64 + "  -", "more"], ["0" * 64 + "  -x"],
                   ["G" * 64 + "  -"]):
        assert fact.process(output) == "", output
    assert fact.process(["ab" * 32 + "  -"]) == "ab" * 32
