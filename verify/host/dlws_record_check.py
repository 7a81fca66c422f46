"""dlws-record-check: an environment's files against their RECORDs, and its bytecode against
its sources (run under -I -S -B).

    dlws_record_check.py PREFIX full|fast [FOLDER...]  the check (one JSON report on stdout);
                                                      FOLDERs: where the deploy removes files
                                                      RECORDs list, on purpose
    dlws_record_check.py PREFIX record-bytecode installed|checked
                                                      the deploy's record of the bytecode

RECORDs list no digest for `__pycache__` files, and Python loads a `.pyc` whose header matches
its source's mtime and size whatever code it holds. So each one this interpreter would load must
be either one the deploy recorded in PREFIX/dlws-bytecode.json right after pip or uv compiled
it (same size and sha256), or byte for byte what compiling its source gives here (its source
being checked against its RECORD)."""

import base64
import csv
import hashlib
import importlib.util
import json
import marshal
import mmap
import os
import re
import stat
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Files Python imports or runs: each must be listed by some distribution's RECORD.
IMPORTABLE = (".py", ".pyc", ".so", ".pth", ".pyd")
LIMIT = 200  # problems reported; the count is always complete
# In the prefix, written by the deploy: {"format": 1, "cache_tag", "how", "files": {path relative
# to the prefix: [size, urlsafe-base64 sha256]}}
BYTECODE = "dlws-bytecode.json"
TAG = sys.implementation.cache_tag  # the only bytecode this interpreter loads: NAME.TAG[.opt-N].pyc
# Folders (under the prefix) whose listed files the deploy removes on purpose: an absent file
# there that Python would not import is not a problem. Given after the mode.
REMOVED = ()
COMPILED = re.compile(r"(?P<stem>[^.]+)\." + re.escape(TAG) + r"(?:\.opt-(?P<level>[12]))?\.pyc")


def site_packages(prefix):
    version = "python{}.{}".format(*sys.version_info[:2])
    return [os.path.join(prefix, lib, version, "site-packages") for lib in ("lib", "lib64")
            if os.path.isdir(os.path.join(prefix, lib, version, "site-packages"))
            and not os.path.islink(os.path.join(prefix, lib))]


def records(site):
    """(distribution, path, algorithm, digest, size, RECORD's mtime) of every RECORD row."""
    rows = []
    for entry in sorted(os.listdir(site)):
        record = os.path.join(site, entry, "RECORD")
        if not entry.endswith(".dist-info") or not os.path.isfile(record):
            continue
        stamp = os.lstat(record).st_mtime
        with open(record, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if not row:
                    continue
                path, digest, size = (row + ["", ""])[:3]
                algorithm, _, value = digest.partition("=")
                rows.append((entry[:-len(".dist-info")], path, algorithm, value, size, stamp))
    return rows


_LOCAL = threading.local()
BLOCK = 1 << 20
CHUNK = 256  # rows a worker takes at a time


def buffer():
    """This thread's read buffer, reused for every file it hashes (no 1 MiB allocation and
    page faults per block read)."""
    if not hasattr(_LOCAL, "view"):
        _LOCAL.view = memoryview(bytearray(BLOCK))
    return _LOCAL.view


def check_rows(rows, site, prefix, mode):
    return [check(row, site, prefix, mode) for row in rows]


def check(row, site, prefix, mode):
    dist, path, algorithm, value, size, stamp = row
    full = os.path.normpath(os.path.join(site, path))
    if not (full + os.sep).startswith(prefix.rstrip(os.sep) + os.sep):
        return full, f"{dist}: {path}: a RECORD path outside the environment", 0
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        if full.startswith(REMOVED) and not path.endswith(IMPORTABLE):
            return full, None, 0  # removed by the deploy on purpose (named on the command line)
        return full, f"{dist}: {path}: missing", 0
    if not value:
        if path.endswith(IMPORTABLE) and not path.endswith(".pyc") and not path.endswith(
                "RECORD"):
            return full, f"{dist}: {path}: importable but no digest in its RECORD", 0
        return full, None, 0
    if size and str(info.st_size) != size:
        return full, f"{dist}: {path}: {info.st_size} bytes, RECORD says {size}", 0
    if mode == "fast":
        # A file written after its RECORD was changed after the install.
        if info.st_mtime > stamp + 2:
            return full, f"{dist}: {path}: modified after the install (newer than RECORD)", 0
        return full, None, 0
    if algorithm not in ("sha256", "sha384", "sha512"):
        return full, f"{dist}: {path}: RECORD digest {algorithm} is not sha256 or stronger", 0
    digest = hashlib.new(algorithm)
    with open(full, "rb", buffering=0) as handle:
        if info.st_size > BLOCK:
            # Hashed from the page cache as it is mapped, not copied out of it first.
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                digest.update(mapped)
        else:
            view = buffer()
            while read := handle.readinto(view):
                digest.update(view[:read])
    found = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    if found != value:
        return full, f"{dist}: {path}: {algorithm} differs from its RECORD", info.st_size
    return full, None, info.st_size


def unlisted(site, listed, compiled=None):
    """Importable files in site-packages that no RECORD lists; a compiled file counts as listed
    when its source is (Python writes __pycache__ beside listed sources), and is added to
    `compiled` as (its path, its source's, its optimization level) when this interpreter would
    load it. A file of another interpreter's tag is never loaded here."""
    found = []
    for folder, dirs, names in os.walk(site):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            if path in listed or not (name.endswith(IMPORTABLE) or ".so." in name):
                continue
            if name.endswith(".pyc") and os.path.basename(folder) == "__pycache__":
                source = os.path.join(os.path.dirname(folder), name.split(".")[0] + ".py")
                if source in listed:
                    match = COMPILED.fullmatch(name)
                    if match and compiled is not None:
                        compiled.append((path, source, int(match["level"] or 0)))
                    continue
            found.append(f"{os.path.relpath(path, site)}: importable, listed by no RECORD")
    return found


def read_bytes(path):
    with open(path, "rb", buffering=0) as handle:
        return handle.read()


def sha256(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def loadable(data, source):
    """Whether Python would load this compiled file in place of its source: this interpreter's
    magic number, and a header that matches the source (its mtime and size; a hash-based file
    is taken as loadable, whatever its hash). A stale file is compiled again from the source,
    so what it holds never runs."""
    if len(data) < 16 or data[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(data[4:8], "little") & 1:  # hash-based (PEP 552)
        return True
    info = os.stat(source)
    return (int.from_bytes(data[8:12], "little") == int(info.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(data[12:16], "little") == info.st_size & 0xFFFFFFFF)


def compiles_to(data, source, level):
    """Whether `data` holds this interpreter's bytecode of `source`: the code object compiling
    the source gives, after the file's 16-byte header. Bytes are compared first (as Python
    writes it); marshal's output also depends on the writing process's reference counts (an
    object referenced twice is written once, with a back-reference) and carries the file name
    it was compiled under (pip and uv give the prefix as they were given it), so where the
    bytes differ the file's code object is read and compared with the compiled one (code
    objects compare their instructions, constants, names, line and exception tables, not their
    file name). That reading is what importing the file would do, as root, after a check that
    passed; a file it cannot read fails."""
    text = read_bytes(source)
    body = data[16:]
    try:
        code = compile(text, source, "exec", dont_inherit=True, optimize=level)
    except (SyntaxError, ValueError):
        return False
    if marshal.dumps(code) == body:
        return True
    try:
        return marshal.loads(body) == code
    except (EOFError, ValueError, TypeError):
        return False


def read_regular(path):
    """(bytes, stat) of a regular file, opened without following a link or waiting on a FIFO;
    (None, stat) when it is not a regular file. OSError when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, info
        parts = []
        while part := os.read(fd, max(info.st_size, 1 << 16)):
            parts.append(part)
        return b"".join(parts), info
    finally:
        os.close(fd)


def load_bytecode_record(prefix):
    """The deploy's record ({relative path: [size, digest]}, its mtime), or (None, problem)."""
    path = os.path.join(prefix, BYTECODE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None, 0, None
    except OSError as error:
        return None, 0, f"{BYTECODE}: cannot be read ({error.strerror})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in (0, os.geteuid()) \
                or info.st_mode & 0o022:
            return None, 0, (f"{BYTECODE}: not a file that root alone can write "
                             f"(owner {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}); "
                             "not used")
        try:
            document = json.loads(handle.read())
            files = document["files"] if document.get("cache_tag") == TAG else {}
            if not isinstance(files, dict):
                raise TypeError
        except (ValueError, TypeError, KeyError, AttributeError):
            return None, 0, f"{BYTECODE}: not a record this check can read; not used"
    return files, info.st_mtime, None


def check_bytecode(compiled, prefix, mode, record, stamp):
    """(problem or None, bytes hashed, whether it was compiled) of each compiled file."""
    def one(entry):
        path, source, level = entry
        relative = path[len(prefix) + 1:]  # (walked from the prefix's site-packages)
        known = record.get(relative) if record else None
        try:
            if known and mode == "fast":
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and known[0] == info.st_size \
                        and info.st_mtime <= stamp + 2:
                    return None, 0, False
            data, info = read_regular(path)
        except OSError as error:
            return f"{relative}: cannot be read ({error.strerror})", 0, False
        if data is None:
            return f"{relative}: compiled file is not a regular file", 0, False
        if known and known[0] == len(data) and mode != "fast" and sha256(data) == known[1]:
            return None, len(data), False
        try:
            if not loadable(data, source):
                return None, len(data), False
            if compiles_to(data, source, level):
                return None, len(data), True
        except OSError as error:
            return f"{relative}: its source cannot be read ({error.strerror})", 0, False
        return (f"{relative}: compiled code that neither the deploy recorded nor its source "
                "compiles to (Python would run it in place of the source)"), len(data), True

    def some(chunk):
        return [one(entry) for entry in chunk]
    workers = max(1, min(32, len(os.sched_getaffinity(0))))
    chunks = [compiled[start:start + CHUNK] for start in range(0, len(compiled), CHUNK)]
    with ThreadPoolExecutor(workers) as pool:
        return [result for done in pool.map(some, chunks) for result in done]


def record_bytecode(prefix, how):
    """Write PREFIX/dlws-bytecode.json: every compiled file this interpreter would load, with its
    size and sha256. `installed`: right after pip or uv compiled them from the sources they just
    installed, each taken as it is; `checked`: an environment compiled before such a record
    existed, so each is kept only when Python would load it and its source compiles to it (the
    rest are left out: the check compiles the source again for each, and names the ones Python
    would load)."""
    files, left_out = {}, []
    for site in site_packages(prefix):
        listed = {os.path.normpath(os.path.join(site, row[1])) for row in records(site)}
        compiled = []
        unlisted(site, listed, compiled)
        for path, source, level in compiled:
            data, _ = read_regular(path)
            if data is None:
                continue
            relative = path[len(prefix) + 1:]
            if how == "checked" and not (loadable(data, source) and
                                         compiles_to(data, source, level)):
                left_out.append(relative)
                continue
            files[relative] = [len(data), sha256(data)]
    fd, temporary = tempfile.mkstemp(prefix=".dlws-bytecode-", dir=prefix)
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"format": 1, "cache_tag": TAG, "how": how, "files": files}, out,
                  sort_keys=True)
    os.replace(temporary, os.path.join(prefix, BYTECODE))
    print(json.dumps({"recorded": len(files), "left_out": left_out[:LIMIT],
                      "left_out_count": len(left_out)}))


def main():
    prefix, mode = os.path.realpath(sys.argv[1]), sys.argv[2]
    global REMOVED
    REMOVED = tuple(os.path.join(prefix, folder.strip("/")) + os.sep for folder in sys.argv[3:]
                    if mode != "record-bytecode" and folder.strip("/"))
    if mode == "record-bytecode":
        record_bytecode(prefix, sys.argv[3])
        return
    started = time.monotonic()
    sites = site_packages(prefix)
    problems, files, size = [], 0, 0
    record, stamp, problem = load_bytecode_record(prefix)
    if problem:
        problems.append(problem)
    compiled = []
    if not sites:
        problems.append(f"{prefix}: no site-packages folder")
    workers = max(1, min(32, len(os.sched_getaffinity(0))))
    for site in sites:
        rows = records(site)
        listed = set()
        # Rows go to the workers in chunks (a future per file cost more than hashing most of
        # them), the largest files first by their RECORD sizes so that no worker is left with
        # one at the end; the report keeps RECORD order.
        order = sorted(range(len(rows)), key=lambda i: -int(rows[i][4])
                       if rows[i][4].isdigit() else 0)
        chunks = [order[start:start + CHUNK] for start in range(0, len(order), CHUNK)]
        results = [None] * len(rows)
        with ThreadPoolExecutor(workers) as pool:
            done = pool.map(check_rows, [[rows[i] for i in chunk] for chunk in chunks],
                            [site] * len(chunks), [prefix] * len(chunks), [mode] * len(chunks))
            for chunk, checked in zip(chunks, done, strict=True):
                for index, result in zip(chunk, checked, strict=True):
                    results[index] = result
        for full, problem, hashed in results:
            listed.add(full)
            files += 1
            size += hashed
            if problem:
                problems.append(problem)
        problems.extend(unlisted(site, listed, compiled))
    recompiled = 0
    for problem, hashed, was_compiled in check_bytecode(compiled, prefix, mode, record, stamp):
        size += hashed
        recompiled += was_compiled
        if problem:
            problems.append(problem)
    print(json.dumps({"mode": mode, "files": files, "bytes_hashed": size, "workers": workers,
                      "bytecode": {"files": len(compiled), "recorded": record is not None,
                                   "compiled_to_check": recompiled},
                      "seconds": round(time.monotonic() - started, 2),
                      "problem_count": len(problems), "problems": problems[:LIMIT]}))


if __name__ == "__main__":
    main()
