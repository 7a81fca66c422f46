"""Host data checked once, before anything connects: the one entry point of every run.

Deploys (config.py's ``check_before_connect``, then the deploy file's ``check_inventory``, and
``check_host`` once each host's facts are read), the plan (deploy/plan.py, ``dlws lock``) and
verify (dlws.inventory.targets, through ``host_problems``) call these, and nothing else decides
whether a value may reach a host. Modules: ``schema`` (keys), ``domains`` (closed value domains),
``connector_keys`` (pyinfra's own keys), ``conflicts`` (between groups), ``secrets`` (redaction),
``inventory`` (``check_before_connect``, ``check_inventory``, ``host_problems``), ``host``
(``check_host``: what only a host's facts show). This module imports none of them.
"""
