"""Every host-data key has a closed domain: hostile values are refused for each, found by walking
the keys (a new key without a domain, or with an open one, fails here)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dlws.roles import all_keys
from dlws.validate.domains import ControllerPath, Domain, Flag, ListOf, Mapping_, Number, Record
from dlws.validate.inventory import host_problems
from dlws.validate.schema import Key

KEYS = all_keys()
ARABIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
LOOK_ALIKES = str.maketrans({"a": "а", "o": "о", "e": "е", "c": "с", "p": "р"})  # Cyrillic
HOSTILE_NUMBERS = [math.nan, math.inf, -math.inf, float("1e309"), 10**30, -(10**30), True]


def hostile_strings(base: str) -> dict[str, str]:
    """Near-valid variants of `base`, each of which a closed domain must refuse."""
    digits = base.translate(ARABIC_DIGITS)
    letters = base.translate(LOOK_ALIKES)
    variants = {
        "trailing-newline": base + "\n",
        "unicode-digits": digits if digits != base else base + "٣",
        "look-alike-letters": letters if letters != base else base + "а",
        "100000-chars": base + "x" * 100_000,
        "command-substitution": "$(id)",
        "appended-substitution": base + "$(id)",
        "leading-dash": "-" + base,
        "nul": base + "\x00",
    }
    return variants


def _example(domain: Domain, holding: str | None = None) -> Any:
    """A value `domain` accepts, to put hostile values beside (a record `holding` that field)."""
    if isinstance(domain, Record):
        wanted = [*domain.required, *([holding] if holding else [])]
        value = {name: _example(domain.fields[name]) for name in wanted}
        for name, field in domain.fields.items():
            if domain(value) is None:
                break
            value = {**value, name: _example(field)}
        assert domain(value) is None, f"no example record passes: {value}: {domain(value)}"
        return value
    if isinstance(domain, ListOf):
        return [_example(domain.item)]
    if isinstance(domain, Mapping_):
        return {domain.keys.example: _example(domain.values)}
    if isinstance(domain, Flag):
        return True
    return domain.example


Slot = tuple[str, str, Callable[[Any], Any], Any]  # (where, "str"/"number", put(value), base)


def slots(domain: Domain | None, base: Any, where: str = "") -> Iterator[Slot]:
    """Every place in a value of `domain` where a string or a number goes."""
    if isinstance(domain, ListOf):
        item = _example(domain.item)
        for inner, kind, put, inner_base in slots(domain.item, item, f"{where}[0]"):
            yield inner, kind, (lambda v, put=put: [put(v)]), inner_base
    elif isinstance(domain, Record):
        for name, field in domain.fields.items():
            record = _example(domain, holding=name)
            for inner, kind, put, inner_base in slots(field, record[name], f"{where}.{name}"):
                yield inner, kind, (lambda v, put=put, name=name, record=record:
                                    {**record, name: put(v)}), inner_base
    elif isinstance(domain, Mapping_):
        value = _example(domain.values)
        yield f"{where}<key>", "str", (lambda v: {v: value}), domain.keys.example
        for inner, kind, put, inner_base in slots(domain.values, value, f"{where}<value>"):
            yield inner, kind, (lambda v, put=put: {domain.keys.example: put(v)}), inner_base
    elif isinstance(domain, Number):
        yield where, "number", (lambda v: v), base
    elif isinstance(domain, Flag):
        return
    else:
        yield where, "str", (lambda v: v), base


def key_slots(key: Key) -> Iterator[Slot]:
    if key.choices is not None:
        yield "", "str", (lambda v: v), key.choices[0]
    elif key.check is not None:
        plain = isinstance(key.default, (str, int, float)) and not isinstance(key.default, bool)
        base = key.default if plain else _example(key.check) if not \
            isinstance(key.check, (ListOf, Record, Mapping_)) else None
        yield from slots(key.check, base)


CASES = []
for key in KEYS:
    for where, kind, put, base in key_slots(key):
        if kind == "str":
            for name, value in hostile_strings(base).items():
                CASES.append(pytest.param(key.name, put(value), id=f"{key.name}{where}-{name}"))
        else:
            for value in HOSTILE_NUMBERS:
                CASES.append(pytest.param(key.name, put(value), id=f"{key.name}{where}-{value}"))


def test_every_key_has_a_closed_domain():
    """A flag, a few choices, or one of the Domain types: nothing else is a key's check."""
    open_keys = [key.name for key in KEYS if not (
        key.types == (bool,) or key.choices is not None or isinstance(key.check, Domain))]
    assert open_keys == []


def test_a_key_without_a_domain_cannot_be_declared():
    with pytest.raises(TypeError, match="declare its domain"):
        Key("base_new_thing", "x", (str,), "a new key someone forgot to close")
    with pytest.raises(TypeError, match="declare its domain"):
        Key("base_new_thing", "x", (str,), "a bare function", check=lambda v: None)


def test_every_numeric_key_is_bounded_and_finite():
    """The keys are enumerated: every number has a Number domain with finite bounds."""
    numeric = [key for key in KEYS if {int, float} & set(key.types) and bool not in key.types]
    assert len(numeric) >= 20
    for key in numeric:
        assert isinstance(key.check, Number), key.name
        assert math.isfinite(key.check.low) and math.isfinite(key.check.high), key.name


def test_every_string_domain_is_length_bounded():
    strings = [key for key in KEYS if str in key.types]
    for key in strings:
        base = key.default if isinstance(key.default, str) else "x"
        found = host_problems("ws-01", {key.name: base + "a" * 5000}, KEYS)
        assert any(p.key == key.name for p in found), f"{key.name} took 5,000 characters"


def test_the_hostile_cases_cover_every_key():
    covered = {param.values[0] for param in CASES}
    flags = {key.name for key in KEYS if key.types == (bool,)}
    assert covered == {key.name for key in KEYS} - flags


@pytest.mark.parametrize(("name", "value"), CASES)
def test_hostile_value_is_refused(name, value):
    found = host_problems("ws-01", {name: value}, KEYS)
    assert any(problem.key == name for problem in found), \
        f"{name} = {value!r:.200} was accepted"
    assert all(len(str(problem)) < 2000 for problem in found), "a message echoes the whole value"


def test_the_examples_themselves_are_accepted():
    """The control case: each slot's base value passes, so a refusal above is the hostile
    part's doing."""
    for key in KEYS:
        if isinstance(getattr(key.check, "item", key.check), ControllerPath):
            continue  # an example controller file does not exist here
        for where, _kind, put, base in key_slots(key):
            found = host_problems("ws-01", {key.name: put(base)}, KEYS)
            assert not [p for p in found if p.key == key.name], (key.name, where, base, found)


def test_domain_types_in_use():
    """The few domain types every key is built from (a census for the issue note)."""
    kinds = {type(key.check).__name__ for key in KEYS if key.check is not None}
    assert kinds <= {"Name", "GroupName", "Number", "HostPath", "LinkPath", "Url", "Address",
                     "ListOf", "Record", "ControllerPath", "PipRequirement"}, kinds
