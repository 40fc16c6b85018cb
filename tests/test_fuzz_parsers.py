"""Seeded mutation fuzzing of every parser (a few hundred cases each; `tools/fuzz.py` runs thousands).

The only acceptable outcomes are a parse or a one-line user error naming the file
(``facerec.fuzzing.run_case`` raises on anything else, which fails the test with the case).
"""

import random
from collections import Counter

import pytest

from facerec.testing.fuzzing import TARGETS, cases, hostile_names, run_case
from facerec.core.names import MAX_NAME_BYTES, name_problem, validate_name
from facerec.core.errors import FaceRecError


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_inputs_parse_or_are_refused_in_one_line(name, tmp_path):
    target = TARGETS[name]
    outcomes = Counter()
    for i, data in cases(target, tmp_path, 300, seed=1):
        try:
            outcomes[run_case(target, tmp_path, data)] += 1
        except Exception as err:
            pytest.fail(f"{name} case {i} ({len(data)} bytes): {type(err).__name__}: {err}")
    assert outcomes["refused"] > 0  # the mutations do reach the checks
    assert sum(outcomes.values()) == 300


def test_names_of_every_kind_are_accepted_only_when_safe_on_disk_and_screen(tmp_path):
    accepted = 0
    for name in hostile_names(random.Random(0), 400):
        if name_problem(name):
            with pytest.raises(FaceRecError, match="invalid name"):
                validate_name(name)
            continue
        accepted += 1
        encoded = name.encode("utf-8")  # valid UTF-8 ...
        assert len(encoded) <= MAX_NAME_BYTES and name == name.strip() and not name.startswith(".")
        assert all(c.isprintable() or c == " " or c in "\u200c\u200d" for c in name)  # ... that prints as itself
        (tmp_path / name).mkdir(exist_ok=True)  # ... and is one folder inside tmp_path
        assert [p.name for p in tmp_path.iterdir() if p.name == name] == [name]
    assert accepted >= 10  # the plain ones, at least


@pytest.mark.parametrize("name, why", [
    ("é" * 65, "bytes"), ("\udcff", "UTF-8"), ("a\nb", "control"), ("a\rb", "control"), ("x\u202eevil", "bidirectional"),
    ("../x", "path"), (".hidden", "path"), (" pad", "spaces"), ("a\u2028b", "line separator"), ("\ufeff", "invisible"),
])
def test_unsafe_names_are_refused_with_the_reason(name, why):
    with pytest.raises(FaceRecError, match=why):
        validate_name(name)


def test_long_but_valid_names_are_accepted():
    assert validate_name("é" * 64) == "é" * 64 and validate_name("李" * 42) == "李" * 42
