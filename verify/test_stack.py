"""The stack the deploy recorded on the host is the one the inventory and the host's facts give."""

from __future__ import annotations

import json

import pytest

from dlws.plan import STACK_FILE, record_problems, stack_record
from dlws.roles import all_defaults


def test_recorded_stack_is_the_expected_stack(target, host, plan, record_fact):
    """/etc/dlws/stack.json (written by the deploy) equals what dlws derives now from the same
    inventory and the host's facts; a difference names each field and says to redeploy."""
    recorded = host.file(STACK_FILE)
    assert recorded.exists, (f"{target.name}: {STACK_FILE} is missing: the host was not "
                             "deployed by this dlws (or the deploy did not finish); deploy it")
    try:
        document = json.loads(recorded.content_string)
    except json.JSONDecodeError as error:
        pytest.fail(f"{target.name}: {STACK_FILE} is not JSON ({error}); redeploy",
                    pytrace=False)
    expected = stack_record(plan, target.data, all_defaults())
    record_fact("stack", expected["stack"])
    problems = record_problems(document, expected)
    assert not problems, (
        f"{target.name}: deployed from other data or another dlws version; redeploy. "
        "Recorded and expected stacks differ:\n  " + "\n  ".join(problems))
