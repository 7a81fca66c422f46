"""Host facts: each a command and its parser, read alike by the deploy, the plan and verify.

By domain, one module each (as pyinfra's own ``pyinfra/facts/*.py``): ``system``, ``gpu`` (with
``gpu_readings``, nvidia-smi's and NVML's readings), ``python``, ``containers``, ``storage``.
``batch`` reads many facts in one round trip and keeps a run's snapshot of them (the cache);
``readers`` reads facts through pyinfra (the deploy) or testinfra (verify) with the same commands
and parsers; ``pyinfra_patch`` is the one place pyinfra's methods are replaced.

This package's own module imports nothing, so importing one fact module never loads the rest.
"""
