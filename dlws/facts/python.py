"""Facts of a Python environment: the distributions installed in it, by canonical name."""

from __future__ import annotations

import re

from pyinfra.api import FactBase

from dlws.command import Command, sh


class VenvPackages(FactBase):
    """Distributions installed in a virtual environment, by canonical name.

    .. code:: python

        {"tensorflow-cpu": "2.21.0", "torch": "2.13.0+cpu"}
    """

    def command(self, prefix: str) -> Command:
        # importlib.metadata needs no pip in the venv, so venvs built by uv are read the same.
        # -I -S: nothing of the environment runs (no site, so no .pth file's code, as root) and
        # no user site is read; its site-packages are named from the prefix instead.
        python = f"{prefix}/bin/python"
        return sh("test -x {} && {} -I -S -c {} {} || true", python, python,
                  "import importlib.metadata as m, os, sys\n"
                  "v = 'python%d.%d' % sys.version_info[:2]\n"
                  "paths = sorted({os.path.realpath(p) for p in (\n"
                  "    os.path.join(sys.argv[1], d, v, 'site-packages')\n"
                  "    for d in ('lib', 'lib64')) if os.path.isdir(p)})\n"
                  "for d in m.distributions(path=paths): print(d.metadata[\"Name\"], d.version)",
                  prefix)

    default = dict

    def process(self, output):
        packages = {}
        for line in output:
            name, _, version = line.strip().partition(" ")
            if name and version:
                packages[canonical(name)] = version
        return packages


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()
