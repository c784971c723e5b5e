"""Offline evaluation with business rules: the lists of `evaluate_ranking(..., rules=...)` are the serving
Plan's (caps hold in every list, a filter removes its items), and a relevant item's rank is its place there."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.data import IdMap, Interactions
from shoprec.errors import DataError
from shoprec.evaluation.engine import ItemStats, evaluate_ranking, make_task
from shoprec.models.base import create_model
from shoprec.rules import ItemTable, Rules

N_ITEMS = 10
CATEGORY = ["A"] * 5 + ["B"] * 5


@pytest.fixture
def world() -> tuple[Interactions, Interactions, ItemTable]:
    """Popularity falls with the item index (item j is seen by 20 - j training users); each of 5 test users'
    target is item 1 (category A, second most popular); seen items stay rankable."""
    items = IdMap([f"i{j}" for j in range(N_ITEMS)])
    users, its = [], []
    for j in range(N_ITEMS):
        for u in range(20 - j):
            users.append(f"u{u}")
            its.append(f"i{j}")
    train = Interactions.from_ids(users, its, items=items)
    test = Interactions.from_ids([f"u{u}" for u in range(5)], ["i1"] * 5, users=train.users, items=train.items)
    table = ItemTable.build(items.externals(range(N_ITEMS)), category=CATEGORY)
    return train, test, table


def test_evaluation_applies_the_rules_to_every_list(world: tuple[Interactions, Interactions, ItemTable]) -> None:
    train, test, table = world
    model = create_model("popular").fit(train)
    task = make_task(train, test, exclude_seen=False)
    stats = ItemStats.from_train(train)
    plain = evaluate_ranking(model, task, (4,), stats)
    assert plain.topk[0].tolist() == [0, 1, 2, 3] and plain.metrics["HR@4"] == 1.0
    capped = evaluate_ranking(model, task, (4,), stats, rules=Rules.parse(max_per_category=2), items=table)
    assert capped.topk[0].tolist() == [0, 1, 5, 6]  # two of A, then B
    assert capped.metrics["NDCG@4"] == pytest.approx(1 / np.log2(3))
    moved = evaluate_ranking(model, task, (4,), stats, rules=Rules.parse(boost='category == "B": 1.5'),
                             items=table)
    assert moved.topk[0].tolist() == [5, 6, 7, 8] and moved.metrics["HR@4"] == 0.0  # the target pushed out
    gone = evaluate_ranking(model, task, (4,), stats, rules=Rules.parse(filter='item_id != "i1"'), items=table)
    assert 1 not in gone.topk and gone.metrics["HR@4"] == 0.0
    with pytest.raises(DataError, match="needs the items"):
        evaluate_ranking(model, task, (4,), stats, rules=Rules.parse(max_per_category=2))
