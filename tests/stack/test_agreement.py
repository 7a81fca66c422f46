"""Deploy and verify agree on every host: the stack the deploy records is the one verify expects.

For every case of the plan matrix (each OS x GPU x driver source, containers, adopted and
replaced drivers, multi-GPU and CPU hosts), the real deploy file runs against a pyinfra @fake host
(tests/fake_hosts.py) and uploads /etc/dlws/stack.json; verify's side reads the same recorded
host through dlws.facts (the same commands and parsers, another transport) and derives its
expectation with the same function. The two documents must be equal.
"""

from __future__ import annotations

import json

import pytest

from dlws.facts.readers import host_facts
from dlws.plan import STACK_FILE, record_problems, stack_record
from dlws.roles import all_defaults
from dlws.stack import derive
from tests.fake_hosts import transcript_reader
from tests.plan.cases import CASES, EXTRA, OLD_DRIVER, SOURCES, Case, host_data, run_case


def _verify_expects(data: dict) -> dict:
    """What verify derives for the host: inventory data with defaults, the host's facts."""
    merged = {**all_defaults(), **data}
    facts = host_facts(transcript_reader(data["fake_responses"]), merged)
    return stack_record(derive(merged, facts), merged, all_defaults())


def _agree(case_id: str, data: dict) -> None:
    run = run_case(case_id, data)
    assert run.error is None, run.error
    recorded = json.loads(run.uploads()[STACK_FILE])
    expected = _verify_expects(data)
    assert record_problems(recorded, expected) == [], (recorded, expected)
    # And the roles carried out that very stack: the record is the plan they read.
    assert recorded["stack"] == run.stack.recorded()


MATRIX = [case for case in CASES if isinstance(case, Case)]


@pytest.mark.parametrize("case", MATRIX, ids=[case.id for case in MATRIX])
def test_deploy_records_the_stack_verify_expects(case: Case):
    _agree(case.id, host_data(case.os, case.gpu, SOURCES[case.source]))


@pytest.mark.parametrize(("case_id", "os", "gpu", "data"), [e[:4] for e in EXTRA],
                         ids=[e[0] for e in EXTRA])
def test_variants_agree(case_id, os, gpu, data):
    data = dict(data)
    source = data.pop("nvidia_driver_source", "auto")
    _agree(case_id, host_data(os, gpu, source, **data))


# The three disagreements found on main before the one derivation (issue 10), and the adopted
# and replaced drivers.
NAMED = {
    # A Debian 12 container with an NVIDIA L4 and every key on auto: no driver is planned (the
    # container's host runs it); verify used to expect R535.
    "debian-12_l4_container_auto": ("debian-12", "t4", "auto", {
        "gpu_model": "NVIDIA L4", "facts": {"container": "docker", "driver": "535.183.01"}}),
    # An Ubuntu 24.04 L4 host that keeps its installed 535 (no driver planned): torch's build
    # and the toolkit follow R535; verify used to expect cu132 and CUDA 13.1.
    "ubuntu-24.04_l4_keeps-535": ("ubuntu-24.04", "t4", "auto", {
        "gpu_model": "NVIDIA L4", "nvidia_driver_branch": "none",
        "facts": {"driver": "535.183.01"}}),
    # Adopted: the planned branch is installed already.
    "ubuntu-22.04_t4_adopts-580": ("ubuntu-22.04", "t4", "distro", {
        "facts": {"driver": "580.95.05"}}),
    # Replaced: R535 installed, R580 planned, its packages purged in the same transaction.
    "ubuntu-22.04_t4_replaces-535": ("ubuntu-22.04", "t4", "distro", {
        "nvidia_driver_replace": True, **OLD_DRIVER}),
}


@pytest.mark.parametrize("case_id", list(NAMED))
def test_named_cases_agree(case_id):
    os, gpu, source, data = NAMED[case_id]
    _agree(case_id, host_data(os, gpu, source, **data))


def test_l4_host_keeping_535_gets_the_builds_535_runs():
    os, gpu, source, data = NAMED["ubuntu-24.04_l4_keeps-535"]
    run = run_case("keeps-535", host_data(os, gpu, source, **data))
    stack = run.stack
    assert stack.driver.branch is None and stack.transition.keep_installed_driver
    # cu13x wheels need R580 (minor-version compatibility); CUDA 13.x toolkits need R580 too.
    assert stack.torch.variant == "cu126", stack.as_dict()
    assert stack.cuda.version is None or stack.cuda.version.startswith("12."), stack.as_dict()


def test_gpu_model_with_no_gpu_count_is_refused_before_any_fact():
    """The third disagreement: gpu_model with gpu_count = 0 (the deploy planned a GPU, verify a
    CPU host) is now refused by the inventory check, naming the host and the key."""
    data = host_data("debian-12", "t4", "auto")
    data["gpu_count"] = 0
    run = run_case("model-without-count", data)
    assert run.error and "host @fake/model-without-count: gpu_count:" in run.error, run.error
    assert run.ops == []


def test_a_changed_pin_is_named_field_by_field():
    """A record made from other data differs from the expectation in exactly the changed
    fields, and the data digest says the inventory changed."""
    data = host_data("debian-12", "no-gpu", "auto")
    recorded = json.loads(run_case("pin-before", data).uploads()[STACK_FILE])
    expected = _verify_expects({**data, "frameworks_torch": "2.13.0"})
    assert record_problems(recorded, expected) == [
        "host data: the inventory's data for this host changed since the deploy",
        # auto takes the newest release on PyPI for Debian 12's Python 3.11: torch 2.15.0
        "torch.version: recorded '2.15.0', expected '2.13.0'"]
