"""The rules' expression language: good expressions give the planted masks, bad ones a RuleError naming the
parameter, the position and the field; and the Plan's rules on a planted score row."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.rules import ItemTable, RuleError, Rules, apply_rules, parse, parse_boost

DAY = 86400.0


@pytest.fixture
def table() -> ItemTable:
    """Six items: two categories (one with a sub-category), three brands, prices, attributes, ages 0..5 days."""
    return ItemTable.build(
        ["a", "b", "c", "d", "e", "f"],
        category=["Makeup", "Makeup > Eyes", "Skin", "Makeup", "Skin", "Nails"],
        brand=["Acme", "Bolt", "Acme", "Acme", "Cora", "Bolt"],
        price=[5.0, 15.0, 25.0, np.nan, 45.0, 55.0],
        available=[True, True, False, True, True, True],
        attributes=[{"color": "red"}, {"color": ["red", "blue"]}, {}, None, {"size": 3, "vegan": True},
                    {"size": 40}],
        created_at=[100 * DAY - d * DAY for d in range(6)], now=100 * DAY)


@pytest.mark.parametrize(("text", "expected"), [
    ('category == "Makeup"', "abd"),  # a path matches itself and everything below it
    ('category in ["Skin", "Nails"]', "cef"),  # several categories at once
    ('category not in ["Makeup"]', "cef"),
    ('category == "Makeup > Eyes"', "b"),
    ('brand == "Acme" and price < 20', "a"),
    ("price >= 15 and price <= 45", "bce"),  # a price range; an unknown price matches no range
    ("not (price > 10)", "ad"),
    ('brand in ["Cora", "Bolt"] or price < 10', "abef"),
    ("available", "abdef"),
    ("available == false", "c"),
    ('attributes.color == "red"', "ab"),  # a list-valued attribute matches any of its values
    ('attr.color != "red"', "cdef"),
    ("attributes.size > 5", "f"),
    ("attributes.vegan", "e"),
    ("age_days < 2", "ab"),
    ("age_days >= 4.5", "f"),
    ('item_id in ["a", "f"]', "af"),
    ("price in [5, 55]", "af"),
    ('brand == "Acme" AND NOT available', "c"),  # keywords in any case
])
def test_good_expressions_select_the_planted_items(table: ItemTable, text: str, expected: str) -> None:
    mask = parse(text).mask(table)
    assert "".join(np.array(list("abcdef"))[mask]) == expected


@pytest.mark.parametrize(("text", "position", "name", "reason"), [
    ("colour == 'red'", 0, "colour", "unknown_field"),
    ('price < 10 and colour == "red"', 15, "colour", "unknown_field"),
    ('price == "cheap"', 0, "price", "bad_expression"),
    ('brand > "A"', 0, "brand", "bad_expression"),
    ("price", 0, "price", "bad_expression"),
    ("price <", 7, None, "bad_expression"),
    ("(price > 1", 10, None, "bad_expression"),
    ("price > 1 brand", 10, None, "bad_expression"),
    ('brand == "Acme', 9, None, "bad_expression"),
    ("price > 1 ; drop table items", 10, None, "bad_expression"),
    ("price in 5", 9, None, "bad_expression"),
    ("price not 5", 10, None, "bad_expression"),
    ("attributes.shape == 'round'", 0, "attributes.shape", "unknown_field"),  # no item has it
])
def test_bad_expressions_name_the_position_and_the_field(table: ItemTable, text: str, position: int,
                                                         name: str | None, reason: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse(text).mask(table)
    err = caught.value
    assert (err.param, err.position, err.name, err.reason) == ("filter", position, name, reason), str(err)
    assert f"position {position}" in str(err) and str(err).startswith("filter:")
    if name:
        assert repr(name.split(".")[-1])[1:-1] in str(err)


def test_boost_syntax_and_rule_parameters_are_checked() -> None:
    expr, weight = parse_boost('brand == "a:b": -0.5')  # a colon inside a string is not the separator
    assert (expr.source, weight) == ('brand == "a:b"', -0.5)
    for kwargs, param, reason in [({"boost": "price > 1"}, "boost", "bad_expression"),
                                  ({"boost": "price > 1: 500"}, "boost", "bad_expression"),
                                  ({"pin": "a:0"}, "pin", "bad_pin"), ({"pin": "a:1,a:2"}, "pin", "bad_pin"),
                                  ({"pin": "a"}, "pin", "bad_pin"),
                                  ({"max_per_category": 0}, "max_per_category", "bad_cap"),
                                  ({"max_per_brand": -1}, "max_per_brand", "bad_cap"),
                                  ({"diversity": 1.5}, "diversity", "out_of_range")]:
        with pytest.raises(RuleError) as caught:
            Rules.parse(**kwargs)  # type: ignore[arg-type]
        assert (caught.value.param, caught.value.reason) == (param, reason), kwargs
    with pytest.raises(RuleError, match="unknown item 'ghost'"):
        Rules.parse(pin="ghost:1").check_items(ItemTable.build(["a"]))


def test_rules_round_trip_and_combine() -> None:
    saved = Rules.parse(filter="price < 50", boost=['brand == "Acme": 0.2'], pin="a:1", max_per_category=2)
    assert Rules.from_json(saved.to_json()) == saved
    request = Rules.parse(filter='brand == "Bolt"', boost="price > 10: -1", max_per_category=3, diversity=0.5)
    both = saved.combined(request)
    assert both.filter is not None and both.filter.source == '(price < 50) and (brand == "Bolt")'
    assert [b.weight for b in both.boosts] == [0.2, -1.0]
    assert (both.pins, both.max_per_category, both.diversity) == (saved.pins, 3, 0.5)
    assert Rules().combined(request) == request and saved.combined(Rules()) == saved


SCORES = np.array([[6, 5, 4, 3, 2, 1]], dtype=np.float32)  # a > b > c > d > e > f


def _ids(idx: np.ndarray) -> str:
    return "".join("abcdef"[i] for i in idx[0] if i >= 0)


def test_each_rule_moves_the_planted_list(table: ItemTable) -> None:
    def run(k: int = 6, **kw: object) -> tuple[str, list[tuple[str, ...]]]:
        idx, _, tags = apply_rules(SCORES, Rules.parse(**kw), table, k)  # type: ignore[arg-type]
        return _ids(idx), tags[0]

    assert run() == ("abcdef", [()] * 6)
    assert run(filter="price > 10")[0] == "bcef"
    ids, tags = run(boost='brand == "Cora": 2')
    assert ids == "eabcdf" and tags[0] == ("boost",)
    ids, tags = run(boost='brand == "Acme": -2')
    assert ids == "befacd" and tags[3] == ("bury",)
    ids, tags = run(pin="f:1,c:3")
    assert ids == "facbde" and tags[0] == ("pin",) and tags[2] == ("pin",)
    ids, tags = run(max_per_category=1)  # Makeup: a, d; Makeup > Eyes: b; Skin: c, e; Nails: f
    assert ids == "abcf" and tags[3] == ("max_per_category",)
    ids, tags = run(max_per_brand=1)
    assert ids == "abe" and tags[2] == ("max_per_brand",)
    ids, tags = run(k=3, diversity=0.9)  # same-category similarity: d (Makeup, like a) gives way
    assert ids == "abc"
    ids, tags = run(k=4, diversity=0.9)  # then f (Nails, a new category) before d and e
    assert ids == "abcf" and tags[3] == ("diversity",)


def test_diversity_uses_item_vectors_when_given(table: ItemTable) -> None:
    vectors = np.array([[1, 0], [1, 0.01], [0, 1], [1, 0], [0, 1], [0.7, 0.7]], dtype=np.float32)
    idx, _, tags = apply_rules(SCORES, Rules.parse(diversity=0.6), table, 3, vectors=lambda i: vectors[i])
    assert _ids(idx)[:2] == "ac" and tags[0][1] == ("diversity",)  # b's vector is a's: c comes before it
