"""Business rules over a ranked list: filters and boosts as expressions over item fields, pinned items, caps per
category / brand and an MMR diversity weight, applied inside the one ranking path (serving's chain and offline
evaluation alike). Expressions are parsed by hand (shoprec.rules.expr) and evaluated as numpy masks over an
ItemTable's columns: nothing reaches SQL.

    rules = Rules.parse(filter='category in ["Makeup"] and price <= 30', boost=['brand == "Acme": 0.5'],
                        pin="sku-1:1", max_per_category=3, diversity=0.2)
    idx, scores, tags = apply_rules(score_rows, rules, ItemTable.build(ids, category=..., brand=...), k=10)
"""

from shoprec.rules.apply import Plan, Vectors, apply_rules
from shoprec.rules.expr import FIELDS, Expression, RuleError, parse, parse_boost
from shoprec.rules.rules import Boost, Pin, Rules
from shoprec.rules.table import ItemTable

__all__ = ["FIELDS", "Boost", "Expression", "ItemTable", "Pin", "Plan", "RuleError", "Rules", "Vectors",
           "apply_rules", "parse", "parse_boost"]
