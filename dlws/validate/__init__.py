"""Host data checked once, before anything connects: the one entry point of every run.

Deploys (config.py's ``check_before_connect``, then the deploy file's ``check_inventory``, and
``check_host`` once each host's facts are read), the plan (deploy/plan.py, ``dlws lock``) and
verify (dlws.inventory.targets, through ``host_problems``) call these, and nothing else decides
whether a value may reach a host.
"""

from dlws.validate.host import check_host
from dlws.validate.inventory import check_before_connect, check_inventory, host_problems
from dlws.validate.schema import Key, Problem, validate
from dlws.validate.secrets import redact

__all__ = ["Key", "Problem", "check_before_connect", "check_host", "check_inventory",
           "host_problems", "redact", "validate"]
