"""Rootless Podman for the lab's people: the distribution's packages, subordinate uid/gid ranges."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import OperationError, operation
from pyinfra.facts.server import Users

from dlws.command import cmd
from dlws.facts.system import SUBGID, SUBUID, SubordinateIds
from dlws.roles.base import _apt
from dlws.stack.services import PODMAN_PACKAGES, PODMAN_VERSIONS

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
    _apt.packages(name=f"Install Podman {PODMAN_VERSIONS[(os_id, release)]} for rootless use "
                      f"({' '.join(packages)})",
                  packages=packages, no_recommends=True,
                  _env={"DEBIAN_FRONTEND": "noninteractive"})
    if not users:
        host.noop("no lab users (base_lab_users): Podman runs for root only")
        return
    subordinate_ids(name="Give each lab user subordinate uid/gid ranges for rootless Podman "
                         f"({', '.join(users)})", users=users, count=count)
