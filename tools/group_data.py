"""Write inventory/group_data/all.py from every key's default and doc: `python tools/group_data.py`.

tests/validate/test_schema.py holds the file equal to the keys; run this after adding or changing
a key.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = '''"""Data for every host: each key dlws reads, at its default, with what it means.

Copy a line into a host, a group file (group_data/<group>.py) or here to change it.
tests/validate/test_schema.py keeps this file equal to the roles' DEFAULTS (tools/group_data.py
writes it).
"""
'''


def render() -> str:
    from dlws.roles import KEY_OWNERS

    parts = [HEADER]
    for owner in KEY_OWNERS:
        doc = (owner.__doc__ or "").strip().splitlines()[0] if owner.__doc__ else ""
        name = owner.__name__.removesuffix(".defaults")
        parts.append(f"\n# --- {name} ({doc})\n")
        for key in owner.KEYS:
            text = key.doc + (f" [one of: {', '.join(repr(c) for c in key.choices)}]"
                              if key.choices else "")
            parts.extend(f"# {line}\n" for line in textwrap.wrap(text, 98))
            parts.append(f"{key.name} = {key.default!r}\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "inventory" / "group_data" / "all.py").write_text(render())
