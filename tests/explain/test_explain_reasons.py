"""Reason copies: the rules' mark keeps every other field."""

from __future__ import annotations

from dataclasses import fields, replace

from shoprec.explain import Reason


def test_moved_by_is_a_copy_with_the_rules_and_every_other_field() -> None:
    values = {f.name: (("a", "b") if f.name in ("because_of", "rules") else (0.5, 0.25) if f.name == "weights"
                       else f"v-{f.name}") for f in fields(Reason)}
    reason = Reason(**values)
    moved = reason.moved_by(("boost", "max_per_category"))
    assert moved == replace(reason, rules=("boost", "max_per_category"))
    assert moved is not reason and reason.rules == ("a", "b")
