"""apt and dpkg under real conditions: an interrupted dpkg, and a lock another process holds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.facts.files import File
from pyinfra.facts.server import Date

from dlws.command import Command, cmd, sh
from dlws.facts import batch as fact_cache

APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"  # what apt.update's cache_time reads
LOCK_CONF = "/etc/apt/apt.conf.d/80dlws-lock"
# Messages apt-get and dpkg print when another process holds one of their locks.
LOCK_MESSAGES = ("Could not get lock", "locked by another process", "Unable to acquire")


class DpkgInterrupted(FactBase):
    """What shows that dpkg was interrupted: files left in its journal, or `dpkg --audit`.

    Empty when dpkg is consistent.

    .. code:: python

        "updates: 0001\\nThe following packages are only half configured ..."
    """

    # /var/lib/dpkg/updates/ holds the journal of a dpkg run that did not finish (dpkg(1),
    # "dpkg was interrupted"); --audit lists packages left unpacked or half configured.
    command = (
        "LANG=C; u=$(ls -A /var/lib/dpkg/updates 2>/dev/null | head -n 3); "
        '[ -z "$u" ] || echo "journal entries in /var/lib/dpkg/updates: $u"; '
        "dpkg --audit 2>&1 || true"
    )
    requires_command = "dpkg"
    default = str

    def process(self, output):
        return "\n".join(line for line in output if line.strip()).strip()


def lock_conf(timeout_s: int) -> str:
    """apt.conf.d content: apt-get waits this long for dpkg's lock, then names its holder; an
    index that cannot be fetched fails `apt-get update` (pyinfra's apt.update included)."""
    # DPkg::Lock::Timeout (apt >= 1.9.11, apt.conf(5)): apt-get install/remove wait for the
    # dpkg frontend lock instead of failing at once while unattended-upgrades runs.
    # APT::Update::Error-Mode "any" (apt >= 2.1.16, "Implement update --error-on=any" in apt's
    # changelog; Debian 12 has 2.6, Ubuntu 22.04 2.4): a source that cannot be fetched is an
    # error (exit 100), not a warning after which apt-get exits 0 with a stale index.
    return (
        "// Managed by dlws (roles/base): wait for a lock held by another apt/dpkg process,\n"
        "// and fail apt-get update when a declared source cannot be fetched.\n"
        f'DPkg::Lock::Timeout "{int(timeout_s)}";\n'
        'APT::Update::Error-Mode "any";\n'
    )


def with_lock_wait(command: Command, timeout_s: int) -> Command:
    """`command` retried while another process holds an apt/dpkg lock, for at most timeout_s.

    apt 2.6's `apt-get update` ignores DPkg::Lock::Timeout (the lists lock fails at once, tested
    on Debian 12) and dpkg has no timeout at all, so the wait is done here. On timeout the
    command's own message stays, which names the lock file and the holding process.
    """
    return sh(
        "end=$(($(date +%s) + {})); "
        "while :; do out=$({{ {}\n}} 2>&1) && break; "
        'case "$out" in *{}*|*{}*|*{}*) '
        'if [ "$(date +%s)" -lt "$end" ]; then sleep 2; continue; fi; '
        "echo {} >&2;; esac; "
        'echo "$out" >&2; exit 1; done',
        int(timeout_s), command, *LOCK_MESSAGES,
        f"dlws: gave up after {int(timeout_s)} s (base_apt_lock_timeout_s) waiting for an "
        "apt/dpkg lock:",
    )


# `apt-get update` that fails when any declared source cannot be fetched: Error-Mode=any
# where apt knows it (every supported OS), and apt's own "W: Failed to fetch" / "E:" lines
# read as failures for an apt that would only warn. apt's lines name the source.
UPDATE = sh(
    "o=$(LANG=C apt-get update -qq -o APT::Update::Error-Mode=any 2>&1); r=$?; "
    'printf "%s\\n" "$o"; '
    'if [ $r -ne 0 ] || printf "%s\\n" "$o" | grep -q -e "^W: Failed to fetch" -e "^E: "; then '
    "echo {} >&2; exit 1; fi",
    "dlws: apt-get update could not fetch every declared source (apt's lines above name it); "
    "check the host's network, base_http_proxy, base_https_proxy, cache_apt_proxy and "
    "base_apt_mirror",
)


@operation()
def repair_dpkg(timeout_s: int = 120):
    """
    Finish an interrupted dpkg run (`dpkg --configure -a`) before anything else uses apt.

    + timeout_s: how long to wait for a lock another apt/dpkg process holds
    """
    found = host.get_fact(DpkgInterrupted)
    if not found:
        host.noop("dpkg's state is consistent")
        return
    yield sh("export DEBIAN_FRONTEND=noninteractive; {}",
             with_lock_wait(cmd("dpkg", "--configure", "-a", "--force-confdef",
                                "--force-confold"), timeout_s))


@operation()
def update(cache_time: int = 0, force: bool = False, timeout_s: int = 120):
    """
    Refresh the apt index when it is older than cache_time (or always with force).

    pyinfra's apt.update with a bounded wait for a lock another process holds.

    + cache_time: seconds the index stays fresh
    + force: refresh whatever the index's age (its sources changed)
    + timeout_s: how long to wait for the lists lock
    """
    if cache_time and not force:
        stamp = host.get_fact(File, path=APT_STAMP)
        if stamp and stamp["mtime"]:
            # File's mtime is naive UTC; compare with the host's clock read the same way.
            now = datetime.fromtimestamp(host.get_fact(Date).timestamp(), timezone.utc)
            if stamp["mtime"] > now.replace(tzinfo=None) - timedelta(seconds=cache_time):
                host.noop("the apt index is fresh")
                # A rerun may skip planning (the host converged) only while it stays fresh.
                fresh_until = stamp["mtime"].replace(tzinfo=timezone.utc) + timedelta(
                    seconds=cache_time)
                fact_cache.valid_until(host, fresh_until.timestamp())
                return
    yield with_lock_wait(UPDATE, timeout_s)
    yield cmd("touch", "--", APT_STAMP)
