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
        python = f"{prefix}/bin/python"
        return sh("test -x {} && {} -c {} || true", python, python,
                  "import importlib.metadata as m\n"
                  "for d in m.distributions(): print(d.metadata[\"Name\"], d.version)")

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
