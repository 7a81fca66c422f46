"""Rootless Podman for the lab's people: the distribution's packages, subordinate uid/gid ranges."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, operation
from pyinfra.facts.server import Users
from pyinfra.operations import apt

from dlws.command import cmd
from dlws.facts.system import SUBGID, SUBUID, SubordinateIds

# Podman and what it runs rootless with, per release, from each archive's own package
# relations (`apt-cache show podman`):
# - Debian 12: podman 4.3.1+ds1-8+deb12u1 (measured here). It Recommends uidmap (newuidmap and
#   newgidmap, setuid helpers for the subordinate ranges), slirp4netns (rootless networking in
#   Podman 4), fuse-overlayfs and catatonit; crun is the runtime it Depends on first.
# - Debian 13: podman 5.4.2+ds1-2 (measured here, `apt-cache policy` in a trixie container).
#   Podman 5 networks rootless containers with passt (pasta) by default; it Recommends passt,
#   slirp4netns, uidmap, catatonit, no longer fuse-overlayfs (rootless overlay is native).
# - Ubuntu 22.04 (podman 3.4.4, universe) and 24.04 (podman 4.9.3, universe): from Ubuntu's
#   package pages, unverified here (Ubuntu's archive is not reachable from this machine).
# `--no-install-recommends` is this project's rule, so what Podman recommends for rootless use
# is named here.
PODMAN_PACKAGES = {
    ("debian", "12"): ["podman", "crun", "uidmap", "slirp4netns", "fuse-overlayfs", "catatonit"],
    ("debian", "13"): ["podman", "crun", "uidmap", "passt", "catatonit"],
    ("ubuntu", "22.04"): ["podman", "crun", "uidmap", "slirp4netns", "fuse-overlayfs",
                          "catatonit"],
    ("ubuntu", "24.04"): ["podman", "crun", "uidmap", "passt", "slirp4netns", "fuse-overlayfs",
                          "catatonit"],
}
PODMAN_VERSIONS = {("debian", "12"): "4.3.1", ("debian", "13"): "5.4.2",
                   ("ubuntu", "22.04"): "3.4.4 (unverified)",
                   ("ubuntu", "24.04"): "4.9.3 (unverified)"}

# login.defs(5): SUB_UID_MIN/SUB_GID_MIN 100000 and SUB_UID_MAX/SUB_GID_MAX 600100000 are
# shadow's defaults, which useradd hands ranges from; dlws allocates inside the same window.
SUBID_MIN = 100_000
SUBID_MAX = 600_100_000


def free_start(taken: list[tuple[int, int]], count: int) -> int:
    """The lowest start >= SUBID_MIN of `count` ids sharing none with the (start, count) ranges
    taken (any owner's: names, uids, other tools')."""
    start = SUBID_MIN
    for first, size in sorted(taken):
        if start + count <= first:
            break
        start = max(start, first + size)
    if start + count - 1 > SUBID_MAX:
        raise OperationError(
            f"no free range of {count} subordinate ids below {SUBID_MAX} (login.defs "
            "SUB_UID_MAX): lower containers_subid_count or free ranges in /etc/subuid, "
            "/etc/subgid")
    return start


def allocations(users: list[str], uids: dict[str, str], entries: list[dict],
                count: int) -> list[tuple[str, int]]:
    """(user, start) for each user without a range in one subid file, none overlapping."""
    taken = [(entry["start"], entry["count"]) for entry in entries]
    owners = {entry["owner"] for entry in entries}
    added = []
    for user in users:
        if user in owners or uids.get(user) in owners:
            continue  # a range the host already gives the user (by name or uid) is kept
        start = free_start(taken, count)
        taken.append((start, count))
        added.append((user, start))
    return added


@operation()
def subordinate_ids(users: list[str], count: int):
    """Give each user a range of `count` subordinate uids and gids where they have none.

    Reads /etc/subuid and /etc/subgid when the operation runs (after the base role has created
    the users; Debian's useradd already gives a new account a range): each user without a
    line gets the lowest free range through `usermod --add-subuids/--add-subgids`, which only
    appends; every existing line is kept. Then `podman system migrate` for that user, as
    Podman's rootless guide asks after the ranges change (its running pause process keeps the
    old user namespace otherwise).

    + users: lab users (names already checked by the inventory's user_name domain)
    + count: ids in each new range
    """
    accounts = host.get_fact(Users)
    uids = {name: str(info.get("uid")) for name, info in accounts.items()}
    changed: list[str] = []
    for path, flag in ((SUBUID, "--add-subuids"), (SUBGID, "--add-subgids")):
        for user, start in allocations(users, uids, host.get_fact(SubordinateIds, path=path),
                                       count):
            yield cmd("usermod", flag, f"{start}-{start + count - 1}", "--", user)
            if user not in changed:
                changed.append(user)
    for user in changed:
        # Podman reads the ranges once per user namespace; migrate stops the old one.
        yield cmd("runuser", "-l", user, "-c",
                  cmd("podman", "system", "migrate"))
    if not changed:
        host.noop(f"every lab user has subordinate uid and gid ranges ({', '.join(users)})")


def install(os_id: str, release: str, users: list[str], count: int) -> None:
    """Podman from the distribution, and subordinate ids for every lab user."""
    packages = PODMAN_PACKAGES[(os_id, release)]
    apt.packages(name=f"Install Podman {PODMAN_VERSIONS[(os_id, release)]} for rootless use "
                      f"({' '.join(packages)})",
                 packages=packages, no_recommends=True,
                 _env={"DEBIAN_FRONTEND": "noninteractive"})
    if not users:
        host.noop("no lab users (base_lab_users): Podman runs for root only")
        return
    subordinate_ids(name="Give each lab user subordinate uid/gid ranges for rootless Podman "
                         f"({', '.join(users)})", users=users, count=count)
