"""Security of what the deploy set up: signed apt sources, no world-writable stack files."""

from __future__ import annotations

import shlex

import pytest

from dlws.gpu_readings import unsigned_apt_sources

APT_ROOTS = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")


def apt_source_paths(host, roots=APT_ROOTS) -> list[str]:
    """Every apt source file apt reads, symlinked ones too (apt follows links)."""
    where = " ".join(shlex.quote(root) for root in roots)
    out = host.run(f"find -L {where} -maxdepth 1 -type f "
                   r"\( -name '*.list' -o -name '*.sources' \) 2>/dev/null")
    return out.stdout.split()


def test_every_apt_source_signed(host):
    # Each source names the keyring it trusts (signed-by), so a key added for NVIDIA's
    # repository cannot sign Debian's packages, and none is trusted=yes (no check at all):
    # https://wiki.debian.org/DebianRepository/UseThirdParty
    paths = apt_source_paths(host)
    assert paths, "no apt sources found under /etc/apt"
    problems = unsigned_apt_sources({p: host.file(p).content_string for p in paths})
    assert not problems, "apt sources without their own keyring:\n" + "\n".join(problems)


def test_no_world_writable_files_in_the_stack(host, target):
    # Anyone who can write into the shared environment or the CUDA toolkit runs code as every
    # user of the workstation. Symlinks are always 0777 and say nothing.
    roots = " ".join([shlex.quote(target["python_env_prefix"]), "/usr/local/cuda*"])
    # No pipe: the exit status is find's own (a folder it could not read fails the check).
    out = host.run(f'rc=0; for p in {roots}; do [ -e "$p" ] || continue; '
                   'find "$p" -xdev ! -type l -perm -0002 -print || rc=1; done; exit $rc')
    assert out.rc == 0, f"cannot list {roots} (find exit {out.rc}): {out.stderr[-1000:]}"
    found = out.stdout.split()
    assert not found, f"world-writable under {roots}: {found[:50]}"


def _groups(host, user: str) -> set[str] | None:
    out = host.run(f"id -nG {shlex.quote(user)}")
    return set(out.stdout.split()) if out.rc == 0 else None


def _lab_users(target) -> list[str]:
    if not target["base_lab_users"]:
        pytest.skip("no lab users declared (base_lab_users)")
    return target["base_lab_users"]


def test_lab_users_in_the_gpu_and_lab_groups(host, target):
    # /dev/nvidia* and /dev/dri/renderD* are group video/render: without them a user's
    # training silently falls back to the CPU; the lab group shares the datasets folders.
    from dlws.roles.base import GPU_GROUPS

    wanted = {*GPU_GROUPS, target["base_lab_group"]}
    missing = {}
    for user in _lab_users(target):
        groups = _groups(host, user)
        if groups is None:
            missing[user] = "no such user"
        elif wanted - groups:
            missing[user] = f"not in {sorted(wanted - groups)} (has {sorted(groups)})"
    assert not missing, f"lab users who cannot use the GPUs or the lab's data: {missing}"


def test_lab_users_have_their_own_home(host, target):
    problems = {}
    for user in _lab_users(target):
        account = host.user(user)
        if not account.exists:
            problems[user] = "no such user"
            continue
        home = host.file(account.home)
        if not home.is_directory:
            problems[user] = f"home {account.home} is missing"
        elif home.user != user:
            problems[user] = f"home {account.home} belongs to {home.user}"
    assert not problems, f"lab users' homes: {problems}"


def test_no_removed_lab_user_left_behind(host, target):
    # The deploy never deletes an account: one the inventory no longer lists is reported here
    # until a person removes it (or declares it again).
    from dlws.roles.base import LAB_USERS_RECORD, recorded_lab_users

    record = host.file(LAB_USERS_RECORD)
    if not record.exists:
        if target["base_lab_users"]:
            pytest.fail(f"{LAB_USERS_RECORD} is missing: the deploy has not recorded the lab "
                        "users it manages", pytrace=False)
        pytest.skip("no lab users declared or recorded")
    recorded = recorded_lab_users(record.content_string.splitlines())
    left = [user for user in recorded
            if user not in target["base_lab_users"] and host.user(user).exists]
    assert not left, (
        f"lab users removed from base_lab_users but still on the host: {left} (accounts and "
        f"homes kept; dlws never deletes users): remove each yourself (userdel NAME) if they "
        "left, or declare them again")


def test_nvidia_keyring_holds_exactly_its_key(host, plan):
    # apt trusts every key in a Signed-By keyring for that repository: one more key there is a
    # second signer of the driver's packages. Each repository path has its own key.
    from dlws.roles import nvidia_repo
    from dlws.stack.table import OS_RELEASES, repo_key

    if not host.file(nvidia_repo.SOURCES).exists:
        pytest.skip("NVIDIA's repository is not configured on this host")
    expected = repo_key(OS_RELEASES[(plan.os.id, plan.os.release)].cuda_repo_path).fingerprint
    out = host.run(nvidia_repo.KeyringPrimaryKeys().command(nvidia_repo.KEYRING))
    found = nvidia_repo.primary_fingerprints(out.stdout)
    assert found == [expected], (
        f"{nvidia_repo.KEYRING} holds {found or 'no key'}; expected only {expected}")
