"""CleaningReport: rule -> rows removed -> first examples; shared by import and training-data cleaning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoprec.data.records import Rejected


@dataclass
class RuleCount:
    count: int = 0
    examples: list[str] = field(default_factory=list)


class CleaningReport:
    """Counts removed rows per rule (a short snake_case reason) and keeps the first few examples.

    Examples are strings like "online_retail.csv.gz:17 field=Quantity: quantity must be > 0 (got -2)".
    """

    def __init__(self, max_examples: int = 5) -> None:
        self.max_examples = max_examples
        self.rules: dict[str, RuleCount] = {}
        self.notes: list[str] = []

    def add(self, rule: str, example: str | Rejected | None = None, count: int = 1) -> None:
        entry = self.rules.setdefault(rule, RuleCount())
        entry.count += count
        if example is not None and len(entry.examples) < self.max_examples:
            entry.examples.append(describe(example) if isinstance(example, Rejected) else example)

    def reject(self, rejected: Rejected) -> None:
        self.add(rejected.reason, rejected)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @property
    def total(self) -> int:
        return sum(r.count for r in self.rules.values())

    def counts(self) -> dict[str, int]:
        return {rule: r.count for rule, r in sorted(self.rules.items())}

    def merge(self, other: CleaningReport) -> None:
        for rule, r in other.rules.items():
            entry = self.rules.setdefault(rule, RuleCount())
            entry.count += r.count
            room = self.max_examples - len(entry.examples)
            entry.examples.extend(r.examples[:max(room, 0)])
        for n in other.notes:
            self.note(n)

    def to_dict(self) -> dict[str, Any]:
        return {
            "removed": self.counts(),
            "examples": {rule: r.examples for rule, r in sorted(self.rules.items())},
            "notes": list(self.notes),
        }

    def render(self) -> str:
        """A plain-text table for people (stderr)."""
        if not self.rules and not self.notes:
            return "nothing removed"
        lines = [f"{'rule':<28} {'removed':>9}  first example"]
        for rule, r in sorted(self.rules.items(), key=lambda kv: -kv[1].count):
            lines.append(f"{rule:<28} {r.count:>9}  {r.examples[0] if r.examples else ''}")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def describe(rej: Rejected) -> str:
    where = f"{rej.source}"
    fld = f" field={rej.field}" if rej.field else ""
    detail = f": {rej.detail}" if rej.detail else ""
    return f"{where}{fld}: {rej.reason}{detail}"
