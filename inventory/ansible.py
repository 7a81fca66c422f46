"""The Ansible YAML inventory named by DLWS_ANSIBLE_INVENTORY as pyinfra groups.

    DLWS_ANSIBLE_INVENTORY=~/lab/hosts.yml pyinfra inventory/ansible.py deploy/workstation.py

Groups, hosts, connection variables (ansible_host, ansible_user, ansible_port,
ansible_ssh_private_key_file, ansible_connection: ssh|docker|local, ansible_become) and dlws's
keys among the host and group vars are read; verify reads the same file with
`pytest verify --inventory hosts.yml`. Translation: dlws/inventory/ansible.py.
"""

import os as _os
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

from dlws.inventory.ansible import pyinfra_groups as _pyinfra_groups  # noqa: E402

_source = _os.environ.get("DLWS_ANSIBLE_INVENTORY")
if not _source:
    raise SystemExit("inventory/ansible.py: set DLWS_ANSIBLE_INVENTORY to the Ansible hosts.yml "
                     "to deploy, e.g. DLWS_ANSIBLE_INVENTORY=~/lab/hosts.yml")
globals().update(_pyinfra_groups(_os.path.expanduser(_source)))
