"""Security of what the deploy set up: signed apt sources, no world-writable stack files."""

from __future__ import annotations

import re

import pytest

from dlws.command import cmd, sh
from dlws.facts.gpu_readings import source_entry, unsigned_apt_sources
from dlws.roles import nvidia_repo
from dlws.roles.base import GPU_GROUPS, KEYRINGS, LAB_USERS_RECORD, recorded_lab_users
from dlws.roles.containers import _docker_repo
from dlws.roles.nvidia_repo import KEYRING, TOOLKIT_KEYRING
from dlws.secrets import SECRETS_DIR, secret_files
from dlws.stack.table import OS_RELEASES, repo_key

from .helpers import apt_source_paths


def test_every_apt_source_signed(host):
    # Each source names the keyring it trusts (signed-by), so a key added for NVIDIA's
    # repository cannot sign Debian's packages, and none is trusted=yes (no check at all):
    # https://wiki.debian.org/DebianRepository/UseThirdParty
    """Every apt source names its own keyring (signed-by) and none is trusted=yes."""
    paths = apt_source_paths(host)
    assert paths, "no apt sources found under /etc/apt"
    problems = unsigned_apt_sources({p: host.file(p).content_string for p in paths})
    assert not problems, "apt sources without their own keyring:\n" + "\n".join(problems)


def test_no_world_writable_files_in_the_stack(host, target):
    # Anyone who can write into the shared environment or the CUDA toolkit runs code as every
    # user of the workstation. Symlinks are always 0777 and say nothing.
    """No file of the environment or the CUDA toolkit is world-writable."""
    roots = f"{target['python_env_prefix']} /usr/local/cuda*"
    # No pipe: the exit status is find's own (a folder it could not read fails the check).
    out = host.run(sh('rc=0; for p in {} /usr/local/cuda*; do [ -e "$p" ] || continue; '
                      'find "$p" -xdev ! -type l -perm -0002 -print || rc=1; done; exit $rc',
                      target["python_env_prefix"]))
    assert out.rc == 0, f"cannot list {roots} (find exit {out.rc}): {out.stderr[-1000:]}"
    found = out.stdout.split()
    assert not found, f"world-writable under {roots}: {found[:50]}"


def _groups(host, user: str) -> set[str] | None:
    out = host.run(cmd("id", "-nG", "--", user))
    return set(out.stdout.split()) if out.rc == 0 else None


def _lab_users(target) -> list[str]:
    if not target["base_lab_users"]:
        pytest.skip("no lab users declared (base_lab_users)")
    return target["base_lab_users"]


def test_lab_users_in_the_gpu_and_lab_groups(host, target):
    # /dev/nvidia* and /dev/dri/renderD* are group video/render: without them a user's
    # training silently falls back to the CPU; the lab group shares the datasets folders.
    """Every lab user is in the GPU groups and the lab group."""
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
    """Every lab user exists and owns their home folder."""
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
    """No lab user removed from base_lab_users still has an account on the host."""
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


def test_nvidia_keyring_holds_exactly_its_key(host, plan, read_fact):
    # apt trusts every key in a Signed-By keyring for that repository: one more key there is a
    # second signer of the driver's packages. Each repository path has its own key.
    """NVIDIA's keyring holds exactly the repository's own key."""
    if not host.file(nvidia_repo.SOURCES).exists:
        pytest.skip("NVIDIA's repository is not configured on this host")
    expected = repo_key(OS_RELEASES[(plan.os.id, plan.os.release)].cuda_repo_path).fingerprint
    found = read_fact(nvidia_repo.KeyringPrimaryKeys, nvidia_repo.KEYRING)
    assert found == [expected], (
        f"{nvidia_repo.KEYRING} holds {found or 'no key'}; expected only {expected}")


# apt's own settings that switch signature checks off (apt.conf(5), apt-secure(8)), read as apt
# reads them (`apt-config dump`), by the last part of the name in any case and spelling.
WEAKENING = {"allowunauthenticated", "allowinsecurerepositories", "allowweakrepositories",
             "allowdowngradetoinsecurerepositories", "trusted", "trustcdrom"}
# What apt's StringToBool reads as false; anything else, for these settings, is "on".
APT_FALSE = {"", "0", "no", "false", "without", "off", "disable"}
APT_CONFIG_LINE = re.compile(r'^(?P<key>\S+) "(?P<value>[^"]*)";$')


def test_apt_config_keeps_signature_checks(host):
    """No apt setting switches signature checks off or allows unauthenticated packages."""
    out = host.run(cmd("apt-config", "dump"))
    assert out.rc == 0, f"apt-config dump failed: {out.stderr[-1000:]}"
    weakened = []
    for line in out.stdout.splitlines():
        match = APT_CONFIG_LINE.match(line.strip())
        if not match or match["key"].lower().startswith("dir::"):
            continue
        last = match["key"].rsplit("::", 1)[-1].replace("-", "").replace("_", "").lower()
        if last in WEAKENING and match["value"].strip().lower() not in APT_FALSE:
            weakened.append(line.strip())
    assert not weakened, ("apt's configuration switches signature checks off (remove these "
                          "from /etc/apt/apt.conf.d/): " + "; ".join(weakened))


def known_keyrings(os_id: str) -> set[str]:
    """Every keyring a dlws role names in a source's Signed-By on this OS: its archive's, NVIDIA's
    (CUDA, container toolkit) and Docker's."""
    return {KEYRINGS[os_id], KEYRING, TOOLKIT_KEYRING, _docker_repo.KEYRING}


def test_every_index_target_signed_by_a_known_key(host, plan):
    """Every index apt fetches is tied to a keyring a dlws role installs, with no check disabled."""
    # Every index apt would fetch, as apt itself parsed the sources (`apt-get indextargets`
    # names each target's entry, file:line or file:stanza, whatever its spelling), is tied to a
    # keyring a dlws role installs, and carries no option that switches checks off. (apt 2.6,
    # Debian 12, prints no Signed-By or Trusted field per target: checked, `$(SIGNED_BY)` is
    # left unexpanded; so the entry apt names is read and its options taken from there.)
    out = host.run(cmd("apt-get", "indextargets", "--no-release-info", "--format",
                       "$(SOURCESENTRY)"))
    assert out.rc == 0, f"apt-get indextargets failed: {out.stderr[-1000:]}"
    entries = sorted(set(out.stdout.split()))
    assert entries, "apt lists no index target: no sources at all?"
    known, problems, contents = known_keyrings(plan.os.id), [], {}
    for entry in entries:
        path, _, number = entry.rpartition(":")
        if path not in contents:
            contents[path] = host.file(path).content_string
        found = source_entry(path, contents[path], int(number)) if number.isdigit() else None
        if found is None:
            problems.append(f"{entry}: apt reads an entry here that dlws cannot find")
        elif found["trusted"]:
            problems.append(f"{entry} ({found['entry']}): {found['trusted']} switches checks off")
        elif not found["signed-by"]:
            problems.append(f"{entry} ({found['entry']}): no Signed-By")
        elif set(found["signed-by"].replace(",", " ").split()) - known:
            problems.append(f"{entry} ({found['entry']}): Signed-By {found['signed-by']} is not a "
                            f"keyring dlws installs ({', '.join(sorted(known))})")
    assert not problems, "index targets apt fetches without a known key:\n" + "\n".join(problems)


def stack_roots(target) -> list[str]:
    """What the stack installed and nobody but root may change: the environment (and the folder
    that holds it), the commands' links, dlws's own files, the hub's, the CUDA tree."""
    prefix = target["python_env_prefix"]
    roots = [prefix, target["frameworks_train_check_path"], target["frameworks_burn_in_path"],
             SECRETS_DIR, "/var/lib/dlws"]
    for key in ("notebooks_prefix", "notebooks_config_dir", "notebooks_state_dir"):
        if target[key]:
            roots.append(target[key])
    return roots


# find -P (never follows a link): anything not owned by root, writable by a group other than
# root, or writable by others (a link's own mode is always 0777 and means nothing; its owner
# does). The CUDA trees are found on the host; a root that is not there is skipped. uv's empty
# `.lock` file (flock only, mode 0666 as uv makes it) carries no code and is left out.
OWNERS_SCRIPT = (
    'rc=0; for p in "$@" /usr/local/cuda /usr/local/cuda-*; do '
    '[ -e "$p" ] || [ -L "$p" ] || continue; '
    'find -P "$p" ! \\( -name .lock -type f -empty \\) '
    '\\( ! -user root -o \\( ! -type l -perm -0020 ! -group root \\) '
    '-o \\( ! -type l -perm -0002 \\) \\) -printf "%u:%g %m %p\\n" || rc=1; done; exit $rc')


def test_stack_files_root_owned_and_writable_by_root_alone(host, target):
    """The environment, the CUDA tree and dlws's records are root-owned and writable by root
    alone."""
    # Whoever can change the environment, the CUDA tree or dlws's records runs code as every
    # user of the workstation (and as root during verify): the lab group included.
    roots = stack_roots(target)
    out = host.run(cmd("sh", "-c", OWNERS_SCRIPT, "dlws-owners", *roots))
    assert out.rc == 0, f"cannot list {roots} (find exit {out.rc}): {out.stderr[-1000:]}"
    found = out.stdout.splitlines()
    assert not found, (f"{len(found)} stack files not root-owned or writable by a group other "
                       f"than root or by others (owner:group mode path): {found[:40]}")


def test_secret_files_keep_their_owner_and_mode(host, target):
    """Every secret file dlws writes keeps its declared owner, group and mode."""
    # One list (dlws/secrets.py) the roles write from: each file that is there has its declared
    # owner and group, and no mode bit beyond its declared mode.
    problems = []
    for declared in secret_files(target):
        found = host.file(declared.path)
        if not found.exists and not found.is_symlink:
            continue
        if found.is_symlink:
            problems.append(f"{declared.path} ({declared.name}) is a symlink")
            continue
        if (found.user, found.group) != (declared.owner, declared.group) or (
                found.mode & ~declared.mode_bits):
            problems.append(f"{declared.path} ({declared.name}) is {found.user}:{found.group} "
                            f"{found.mode:o}, declared {declared.owner}:{declared.group} "
                            f"{declared.mode} at most")
    assert not problems, ("secret files others can read or change (redeploy, or chown/chmod as "
                          "declared in dlws/secrets.py): " + "; ".join(problems))
