"""dlws-record-check: an environment's files against their RECORDs (run under -I -S -B)."""

import base64
import csv
import hashlib
import json
import mmap
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Files Python imports or runs: each must be listed by some distribution's RECORD.
IMPORTABLE = (".py", ".pyc", ".so", ".pth", ".pyd")
LIMIT = 200  # problems reported; the count is always complete


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


def unlisted(site, listed):
    """Importable files in site-packages that no RECORD lists; a compiled file counts as listed
    when its source is (Python writes __pycache__ beside listed sources)."""
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
                    continue
            found.append(f"{os.path.relpath(path, site)}: importable, listed by no RECORD")
    return found


def main():
    prefix, mode = os.path.realpath(sys.argv[1]), sys.argv[2]
    started = time.monotonic()
    sites = site_packages(prefix)
    problems, files, size = [], 0, 0
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
        problems.extend(unlisted(site, listed))
    print(json.dumps({"mode": mode, "files": files, "bytes_hashed": size, "workers": workers,
                      "seconds": round(time.monotonic() - started, 2),
                      "problem_count": len(problems), "problems": problems[:LIMIT]}))


if __name__ == "__main__":
    main()
