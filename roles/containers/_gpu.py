"""How GPUs reach containers: CDI (its spec kept current) or the legacy hook with /dev/char."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.operations import files, server, systemd

from dlws.command import cmd
from dlws.facts.containers import CDI_SPEC
from dlws.facts.gpu import NvidiaDevCharLinks, missing_dev_char_links
from dlws.stack.services import refresh_units

# --- the CDI spec, regenerated when the driver changes ------------------------------------------
# nvidia-container-toolkit-base ships nvidia-cdi-refresh.path and .service from 1.18.0
# (NVIDIA/nvidia-container-toolkit, packaging/debian/nvidia-container-toolkit-base.install at
# v1.18.0; deployments/systemd/): the path unit watches /lib/modules/%v/modules.dep(.bin) (a
# driver install or upgrade rebuilds it) and /usr/bin/nvidia-ctk, and starts the service, which
# runs `nvidia-ctk cdi generate`. Its output is NVIDIA_CTK_CDI_OUTPUT_FILE_PATH, by default
# /var/run/cdi/nvidia.yaml; a drop-in points it at the spec dlws generates and verify reads.
REFRESH_PATH_UNIT = "nvidia-cdi-refresh.path"
REFRESH_SERVICE = "nvidia-cdi-refresh.service"
REFRESH_DROPIN = "/etc/systemd/system/nvidia-cdi-refresh.service.d/dlws-output.conf"
REFRESH_DROPIN_CONTENT = (
    "# Managed by dlws (roles/containers): one CDI spec, the one the deploy and verify read.\n"
    "[Service]\n"
    f"Environment=NVIDIA_CTK_CDI_OUTPUT_FILE_PATH={CDI_SPEC}\n"
)
# The package's own first spec (its postinst starts the service before the drop-in exists).
# CDI gives a spec in /var/run/cdi priority over one in /etc/cdi for the same device
# (container-device-interface pkg/cdi/cache.go resolveConflict): a stale copy there would
# shadow the current one, so it goes.
RUNTIME_SPEC = "/var/run/cdi/nvidia.yaml"
# Toolkits before 1.18 ship no refresh units: dlws installs the same pair under its own names.
DLWS_REFRESH_PATH_UNIT = "dlws-cdi-refresh.path"
DLWS_REFRESH_SERVICE = "dlws-cdi-refresh.service"
DLWS_REFRESH_PATH_CONTENT = (
    "# Managed by dlws (roles/containers): NVIDIA's nvidia-cdi-refresh.path (toolkit 1.18+).\n"
    "[Unit]\nDescription=Regenerate the NVIDIA CDI spec when the driver or toolkit changes\n\n"
    "[Path]\nPathChanged=/lib/modules/%v/modules.dep\nPathChanged=/lib/modules/%v/modules.dep.bin\n"
    "PathChanged=/usr/bin/nvidia-ctk\nUnit=dlws-cdi-refresh.service\n\n"
    "[Install]\nWantedBy=multi-user.target\n"
)
DLWS_REFRESH_SERVICE_CONTENT = (
    "# Managed by dlws (roles/containers): NVIDIA's nvidia-cdi-refresh.service (toolkit 1.18+).\n"
    "[Unit]\nDescription=Regenerate the NVIDIA CDI spec\n"
    "ConditionPathExists=/usr/bin/nvidia-ctk\n\n"
    "[Service]\nType=oneshot\n"
    "ExecCondition=/usr/bin/grep -qE /(nvidia|nvidia-current)[.]ko /lib/modules/%v/modules.dep\n"
    f"ExecStart=/usr/bin/nvidia-ctk cdi generate --output={CDI_SPEC}\n\n"
    "[Install]\nWantedBy=multi-user.target\n"
)

# --- the legacy hook's /dev/char links ---------------------------------------------------------
# NVIDIA/nvidia-docker#1730 (NVIDIA's notice for "Failed to initialize NVML: Unknown Error"
# after `systemctl daemon-reload`, NVIDIA/nvidia-container-toolkit#48) and the toolkit's
# troubleshooting page: runc re-applies a container's device rules through /dev/char/MAJOR:MINOR
# links, which the driver does not create for its nodes; `nvidia-ctk system
# create-dev-char-symlinks --create-all` creates them for every possible node, and this udev
# rule, from the same notice, runs it again whenever the driver binds (boot, module reload).
DEV_CHAR_RULE = "/etc/udev/rules.d/71-nvidia-dev-char.rules"
DEV_CHAR_RULE_CONTENT = (
    "# Managed by dlws (roles/containers): /dev/char links for NVIDIA's device nodes\n"
    "# (NVIDIA/nvidia-docker#1730), so systemctl daemon-reload leaves containers their GPUs.\n"
    'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", '
    'RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"\n'
)
CREATE_LINKS = cmd("nvidia-ctk", "system", "create-dev-char-symlinks", "--create-all")

def keep_spec_current(toolkit_version: str) -> None:
    """The spec regenerated on every driver or toolkit change, by systemd, between deploys."""
    if refresh_units(toolkit_version) == "toolkit":
        dropin = files.put(name=f"Point {REFRESH_SERVICE} at {CDI_SPEC}",
                           src=StringIO(REFRESH_DROPIN_CONTENT), dest=REFRESH_DROPIN,
                           mode="644", create_remote_dir=True)
        path_unit, service = REFRESH_PATH_UNIT, REFRESH_SERVICE
    else:
        dropin = files.put(name=f"Install {DLWS_REFRESH_SERVICE} (the toolkit ships none before "
                                "1.18)", src=StringIO(DLWS_REFRESH_SERVICE_CONTENT),
                           dest=f"/etc/systemd/system/{DLWS_REFRESH_SERVICE}", mode="644")
        files.put(name=f"Install {DLWS_REFRESH_PATH_UNIT}",
                  src=StringIO(DLWS_REFRESH_PATH_CONTENT),
                  dest=f"/etc/systemd/system/{DLWS_REFRESH_PATH_UNIT}", mode="644")
        path_unit, service = DLWS_REFRESH_PATH_UNIT, DLWS_REFRESH_SERVICE
    systemd.daemon_reload(name="Reload systemd's units (the CDI refresh changed)",
                          _if=dropin.did_change)
    files.file(name=f"Remove the toolkit's first spec {RUNTIME_SPEC} (it would shadow "
                    f"{CDI_SPEC})", path=RUNTIME_SPEC, present=False)
    server.service(name=f"Regenerate the CDI spec whenever the driver changes ({path_unit})",
                   service=path_unit, running=True, enabled=True)
    server.shell(name=f"Regenerate {CDI_SPEC} now through {service}",
                 commands=[cmd("systemctl", "start", service)], _if=dropin.did_change)


def dev_char_links() -> None:
    """/dev/char links for every NVIDIA device node, now and after every driver load."""
    files.put(name=f"Install the udev rule that keeps /dev/char links for NVIDIA's nodes "
                   f"({DEV_CHAR_RULE})", src=StringIO(DEV_CHAR_RULE_CONTENT),
              dest=DEV_CHAR_RULE, mode="644", create_remote_dir=True)
    # The nodes there are now (a driver installed by this run loads after its reboot, when the
    # rule creates the links as the driver binds).
    missing = missing_dev_char_links(host.get_fact(NvidiaDevCharLinks))
    if missing:
        server.shell(name="Create /dev/char links for NVIDIA's device nodes"
                          + (f" (missing: {', '.join(missing)})" if missing else ""),
                     commands=[CREATE_LINKS])
    else:
        host.noop("every NVIDIA device node has its /dev/char link")
