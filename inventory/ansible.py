"""The Ansible inventory named by DLWS_ANSIBLE_INVENTORY, read by ansible-core, as pyinfra groups.

    DLWS_ANSIBLE_INVENTORY=~/lab/hosts.ini pyinfra inventory/ansible.py deploy/workstation.py
    DLWS_ANSIBLE_INVENTORY=~/lab/ DLWS_ANSIBLE_LIMIT='gpu:!ws03*' pyinfra inventory/ansible.py ...

Any source `ansible-inventory -i` takes: an INI, YAML or TOML file, a directory with
group_vars/ and host_vars/, a dynamic inventory script, an inventory plugin's YAML. Vaulted
variables: ANSIBLE_VAULT_PASSWORD_FILE (Ansible's own) or DLWS_ANSIBLE_VAULT_PASSWORD_FILE.
DLWS_ANSIBLE_LIMIT takes Ansible's host patterns; hosts outside it are not read further.
Connection variables become pyinfra's (ansible_host -> ssh_hostname, ansible_connection=docker
-> @docker/NAME, ...), dlws's keys are host data and validated here, naming file, host and key,
before anything connects; the Ansible-only variables are named once on stderr. Verify reads the
same source with `pytest verify --inventory SOURCE [--limit PATTERN]`. Translation:
dlws/inventory/ansible.py.
"""

import os as _os
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

from pyinfra.api.exceptions import InventoryError as _InventoryError  # noqa: E402

from dlws.inventory import ansible as _ansible  # noqa: E402
from dlws.roles import all_keys as _all_keys  # noqa: E402

_source = _os.environ.get(_ansible.INVENTORY_ENV)
if not _source:
    raise _InventoryError(f"inventory/ansible.py: set {_ansible.INVENTORY_ENV} to the Ansible "
                          "inventory to deploy (a hosts file, a directory or a script), e.g. "
                          f"{_ansible.INVENTORY_ENV}=~/lab/hosts.ini")
try:
    _hosts, _notice = _ansible.load(_source, _all_keys(),
                                    limit=_os.environ.get(_ansible.LIMIT_ENV) or None)
except _ansible.AnsibleInventoryError as _error:
    raise _InventoryError(str(_error)) from None
if _notice:
    print(_notice, file=_sys.stderr)
globals().update(_ansible.pyinfra_groups(_hosts))
