"""Security of what the deploy set up: signed apt sources, no world-writable stack files."""

from __future__ import annotations

import shlex

from verify.gpu_readings import unsigned_apt_sources

APT_SOURCES = ("find /etc/apt/sources.list /etc/apt/sources.list.d -maxdepth 1 -type f "
               r"\( -name '*.list' -o -name '*.sources' \) 2>/dev/null")


def test_every_apt_source_signed(host):
    # Each source names the keyring it trusts (signed-by), so a key added for NVIDIA's
    # repository cannot sign Debian's packages, and none is trusted=yes (no check at all):
    # https://wiki.debian.org/DebianRepository/UseThirdParty
    paths = host.run(APT_SOURCES).stdout.split()
    assert paths, "no apt sources found under /etc/apt"
    problems = unsigned_apt_sources({p: host.file(p).content_string for p in paths})
    assert not problems, "apt sources without their own keyring:\n" + "\n".join(problems)


def test_no_world_writable_files_in_the_stack(host, target):
    # Anyone who can write into the shared environment or the CUDA toolkit runs code as every
    # user of the workstation. Symlinks are always 0777 and say nothing.
    roots = " ".join([shlex.quote(target["python_env_prefix"]), "/usr/local/cuda*"])
    out = host.run(f'for p in {roots}; do [ -e "$p" ] || continue; '
                   'find "$p" -xdev ! -type l -perm -0002 -print; done | head -n 50')
    assert out.rc == 0, f"cannot list {roots}: {out.stderr}"
    found = out.stdout.split()
    assert not found, f"world-writable under {roots}: {found}"
