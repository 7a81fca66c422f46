"""apt and dpkg under real conditions: an interrupted dpkg, and a lock another process holds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pyinfra import host
from pyinfra.api import FactBase, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File
from pyinfra.facts.server import Date
from pyinfra.operations import apt

from dlws.command import Command, cmd, sh
from dlws.facts import batch as fact_cache

APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"  # what apt.update's cache_time reads
LOCK_CONF = "/etc/apt/apt.conf.d/80dlws-lock"
# An apt-get install that runs beside the deploy's next operations (install_beside): root's
# folder, its lock (held by the install while it runs), exit status and output.
BESIDE_DIR = "/var/lib/dlws/apt-beside"
BESIDE_LOCK, BESIDE_STATUS, BESIDE_LOG = (f"{BESIDE_DIR}/{name}" for name in
                                          ("lock", "status", "log"))
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


def repair_command(timeout_s: int) -> Command:
    """Finish an interrupted dpkg run: `dpkg --configure -a`, and the packages it cannot
    configure reinstalled."""
    configure = with_lock_wait(cmd("dpkg", "--configure", "-a", "--force-confdef",
                                   "--force-confold"), timeout_s)
    # A package whose unpacking was cut short is left `reinstreq half-installed`: dpkg cannot
    # configure it ("package is in a very bad inconsistent state; you should reinstall it"),
    # and `apt-get install -f` leaves it so (tried on Debian 12). Configure what dpkg can, then
    # reinstall those from the index the interrupted run used, then configure again.
    reinstall = with_lock_wait(sh(
        "p=$(dpkg-query -W -f='${{Package}}:${{Architecture}} ${{Status}}\\n' | "
        "awk '/reinstreq|half-installed/ {{print $1}}'); "
        '[ -z "$p" ] || apt-get install --reinstall -y -o Dpkg::Options::=--force-confdef '
        "-o Dpkg::Options::=--force-confold -- $p"), timeout_s)
    return sh("export DEBIAN_FRONTEND=noninteractive; ({}) || true; {} && {}",
              configure, reinstall, configure)


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
    yield repair_command(timeout_s)


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


def install_command(packages: list[str]) -> Command:
    """apt-get install of `packages` without recommends, keeping changed config files, as
    pyinfra's apt.packages runs it (noninteractive, --force-confdef --force-confold)."""
    return cmd("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-y",
               "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
               "install", "--no-install-recommends", *packages)


def beside_command(packages: list[str]) -> Command:
    """Start `apt-get install PACKAGES` in the background and return at once.

    A subshell takes BESIDE_LOCK (flock) and starts the install in its own session (setsid -f)
    with that lock's descriptor, so the lock is held from before this command returns until the
    install ends, however that ends; then the subshell exits. The install writes its output to
    BESIDE_LOG and its exit status to BESIDE_STATUS, which reads `running` until then. The
    folder is root's alone and never a link.
    """
    child = sh("{} >{} 2>&1; echo $? >{}", install_command(packages), BESIDE_LOG, BESIDE_STATUS)
    return sh("test ! -L {} && mkdir -p -m 700 -- {} && {} && test ! -L {} && "
              "echo running >{} && "
              "(exec 9>{} && flock 9 && exec setsid -f sh -c {} </dev/null >/dev/null 2>&1)",
              BESIDE_DIR, BESIDE_DIR, private_folder(), BESIDE_STATUS, BESIDE_STATUS,
              BESIDE_LOCK, str(child))


def private_folder() -> Command:
    """BESIDE_DIR is the running user's (root's on a host) with mode 0700, or this fails naming
    it: no other user can have written the status the wait trusts."""
    return sh('{{ [ "$(stat -c %u.%a -- {})" = "$(id -u).700" ] || '
              "{{ echo {} >&2; false; }}; }}",
              BESIDE_DIR,
              f"dlws: {BESIDE_DIR} is not root's alone (owner root, mode 0700): another user "
              "could write the apt install's status there; remove it, and deploy again")


def wait_beside_command() -> Command:
    """Wait for the install beside to end (its lock), then fail unless it exited 0, with the
    end of its output and where the rest is. A subshell: it exits only itself, so a command
    joined after it (all_of) runs."""
    return sh(
        "({} || exit 1; flock {} true; s=$(cat {} 2>/dev/null); "
        'if [ "$s" = 0 ]; then exit 0; fi; '
        "tail -n 40 -- {} >&2; "
        'echo "dlws: the apt-get install run beside the next operations ended with status '
        '${{s:-none}}:" {} >&2; exit 1)',
        private_folder(), BESIDE_LOCK, BESIDE_STATUS, BESIDE_LOG,
        f"its output is in {BESIDE_LOG} on the host (above, its last lines)",
    )


# Each host's install_beside operation of this deploy (what settle and running_beside read).
_BESIDE: dict[object, dict[str, OperationMeta]] = {}
_WAITS: dict[object, set[str]] = {}  # the hosts whose wait for it is planned


def start_beside(name: str, packages: list[str]) -> OperationMeta:
    """install_beside, recorded for this host: the next apt operation (packages, update) and
    settle() wait for it first."""
    started = install_beside(name=name, packages=packages)
    # The command itself writes only its own folder. The packages land while the next
    # operations run, which read none of their files; the wait for them (settle) drops every
    # reading, so nothing read before it is used after it.
    fact_cache.touches(started, [BESIDE_DIR])
    _BESIDE.setdefault(host.state, {})[host.name] = started
    return started


def running_beside() -> bool:
    """Whether this deploy started an install beside on this host: its operation changed
    something (or, before it ran, will). It may have ended since: wait_beside_command() then
    returns at once."""
    started = _BESIDE.get(host.state, {}).get(host.name)
    if started is None:
        return False
    return started.did_change() if started.is_complete() else started.will_change


def settle() -> None:
    """Before anything that uses apt or dpkg, or the packages an install beside brings: wait
    for it (once per host and deploy; nothing when none was started)."""
    started = _BESIDE.get(host.state, {}).get(host.name)
    waits = _WAITS.setdefault(host.state, set())
    if started is not None and host.name not in waits:
        waits.add(host.name)
        wait_beside(name="Wait for the packages installed beside the Python environment",
                    _if=started.did_change)


# The packages of each host's first apt-get run of this deploy (roles/base's install_first).
_FIRST: dict[object, dict[str, frozenset[str]]] = {}


def install_first(**kwargs) -> OperationMeta:
    """pyinfra's apt.packages of roles/base's first run (before any install beside), recorded
    for this host: a later role's packages() that asks for nothing more plans nothing."""
    _FIRST.setdefault(host.state, {})[host.name] = frozenset(kwargs["packages"])
    return apt.packages(**kwargs)


def packages(**kwargs) -> OperationMeta:
    """pyinfra's apt.packages, after any install beside has ended (every role's apt installs
    come through here: tests/roles/base/test_apt_beside.py)."""
    settle()
    return apt.packages(**kwargs)


def packages_unless_first(**kwargs) -> OperationMeta | None:
    """packages(), or nothing (a noop line, None) where roles/base's first apt-get run of this
    deploy installs every one of them already: a role whose packages roles/base may install
    first (roles/storage's tools) neither waits for the install beside nor runs apt again."""
    if set(kwargs["packages"]) <= _FIRST.get(host.state, {}).get(host.name, frozenset()):
        host.noop(f"{kwargs.get('name', 'apt packages')}: installed by roles/base's first "
                  "apt-get run")
        return None
    return packages(**kwargs)


def refresh(**kwargs) -> OperationMeta:
    """pyinfra's apt.update, after any install beside has ended."""
    settle()
    return apt.update(**kwargs)


@operation()
def install_beside(packages: list[str]):
    """
    Install the packages not yet installed, in the background: the deploy goes on with
    operations that need none of them (the Python environment) while apt-get runs, and
    wait_beside waits for it before anything else uses apt or the packages.

    + packages: Debian package names (no versions or architectures)
    """
    installed = host.get_fact(DebPackages)
    missing = [name for name in packages if name not in installed]
    if not missing:
        host.noop(f"already installed: {', '.join(packages)}")
        return
    yield beside_command(missing)


@operation()
def wait_beside():
    """
    Wait for the install install_beside started, and fail with its output unless it succeeded.
    """
    yield wait_beside_command()
