"""The rules' expression language: a tokenizer and a recursive-descent parser written by hand, and a vectorised
evaluator over the item columns of an `ItemTable` (numpy masks, never SQL, never Python `eval`).

Grammar (keywords case-insensitive):

    expr    := and ("or" and)*
    and     := unary ("and" unary)*
    unary   := "not" unary | "(" expr ")" | test
    test    := FIELD [ ("==" | "!=" | "<" | "<=" | ">" | ">=") LITERAL
                     | ["not"] "in" "[" LITERAL ("," LITERAL)* "]" ]      (a bare FIELD: a true/false field)
    LITERAL := NUMBER | STRING ('...' or "...", backslash escapes) | true | false
    FIELD   := category | brand | item_id | price | available | popularity | age_days | updated_days
               | created_at | updated_at | attributes.NAME (also attr.NAME)

Why by hand: the grammar is ~10 rules, and the error we must give ("unknown field 'colour' at position 12")
needs the exact position of every token; a hand parser gives it in ~150 lines with no dependency, and it
cannot be talked into anything but the node types below (no attribute access, no calls, no SQL).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from shoprec.errors import DataError

if TYPE_CHECKING:
    from shoprec.rules.table import ItemTable

MAX_EXPRESSION_LENGTH = 2000
MAX_LIST = 1000
STRING_FIELDS = ("category", "brand", "item_id")
NUMBER_FIELDS = ("price", "popularity", "age_days", "updated_days", "created_at", "updated_at")
FLAG_FIELDS = ("available",)
TIMED_FIELDS = ("age_days", "updated_days")  # their values change with the clock: masks not cached
ATTRIBUTE_PREFIXES = ("attributes.", "attr.")
FIELDS = STRING_FIELDS + NUMBER_FIELDS + FLAG_FIELDS
COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
Literal: TypeAlias = str | float | bool


class RuleError(DataError):
    """A rule that cannot be used: `param` is the request parameter (filter, boost, pin, ...), `position` the
    0-based character offset in the expression (None when not about one), `name` the field or item id at fault,
    `reason` a snake_case code (bad_expression, unknown_field, unknown_item, bad_cap, ...)."""

    def __init__(self, param: str, message: str, *, reason: str = "bad_expression", position: int | None = None,
                 name: str | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{param}: {message}{where}")
        self.param, self.reason, self.position, self.name = param, reason, position, name


# ------------------------------------------------------------------------------ tokens
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)?)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|:)
""", re.VERBOSE)
KEYWORDS = ("and", "or", "not", "in", "true", "false")


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number, string, name, keyword, op, end
    text: str
    pos: int
    value: Any = None


def tokenize(text: str, param: str) -> list[Token]:
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise RuleError(param, f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            quote = text[pos] in "'\""
            raise RuleError(param, "unterminated string" if quote else f"unexpected character {text[pos]!r}",
                            position=pos)
        kind = m.lastgroup or ""
        if kind == "number":
            out.append(Token("number", m.group(), pos, float(m.group())))
        elif kind == "string":
            out.append(Token("string", m.group(), pos, re.sub(r"\\(.)", r"\1", m.group()[1:-1])))
        elif kind == "name":
            word = m.group()
            out.append(Token("keyword", word.lower(), pos) if word.lower() in KEYWORDS else Token("name", word, pos))
        elif kind == "op":
            out.append(Token("op", m.group(), pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


# ------------------------------------------------------------------------------ nodes
@dataclass(frozen=True)
class Test:
    """FIELD op literal(s); op is one of COMPARISONS, "in", "not in", or "is" (a bare true/false field)."""

    field: str
    op: str
    values: tuple[Literal, ...]
    pos: int


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    nodes: tuple[Node, ...]


Node: TypeAlias = Test | Not | BoolOp


@dataclass(frozen=True)
class Expression:
    """A parsed expression and its source text (what is saved and echoed back)."""

    source: str
    node: Node

    @property
    def timed(self) -> bool:
        """Whether its value depends on the clock (an age field): such a mask is computed per request."""
        return any(t.field in TIMED_FIELDS for t in _tests(self.node))

    def fields(self) -> list[str]:
        return [t.field for t in _tests(self.node)]

    def mask(self, table: ItemTable, param: str = "filter") -> np.ndarray:
        """Boolean mask over the table's items (cached on the table unless timed)."""
        return table.cached_mask(self, lambda: _eval(self.node, table, param))


def _tests(node: Node) -> list[Test]:
    if isinstance(node, Test):
        return [node]
    if isinstance(node, Not):
        return _tests(node.node)
    return [t for n in node.nodes for t in _tests(n)]


# ------------------------------------------------------------------------------ parser
class _Parser:
    def __init__(self, text: str, param: str) -> None:
        self.text, self.param = text, param
        self.tokens, self.i = tokenize(text, param), 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, message: str, tok: Token | None = None) -> RuleError:
        tok = tok or self.tok
        return RuleError(self.param, message, position=tok.pos)

    def expect(self, kind: str, text: str | None = None) -> Token:
        tok = self.tok
        if tok.kind != kind or (text is not None and tok.text != text):
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected {repr(text) if text else kind}, found {found}")
        self.i += 1
        return tok

    def accept(self, kind: str, text: str) -> bool:
        if self.tok.kind == kind and self.tok.text == text:
            self.i += 1
            return True
        return False

    def expression(self) -> Node:
        nodes = [self.conjunction()]
        while self.accept("keyword", "or"):
            nodes.append(self.conjunction())
        return nodes[0] if len(nodes) == 1 else BoolOp("or", tuple(nodes))

    def conjunction(self) -> Node:
        nodes = [self.unary()]
        while self.accept("keyword", "and"):
            nodes.append(self.unary())
        return nodes[0] if len(nodes) == 1 else BoolOp("and", tuple(nodes))

    def unary(self) -> Node:
        if self.accept("keyword", "not"):
            return Not(self.unary())
        if self.accept("op", "("):
            node = self.expression()
            self.expect("op", ")")
            return node
        return self.test()

    def test(self) -> Test:
        tok = self.tok
        if tok.kind != "name":
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise self.fail(f"expected a field name, found {found}")
        self.i += 1
        field = _field(tok, self.param)
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            op = self.tok.text
            self.i += 1
            return _typed(Test(field, op, (self.literal(),), tok.pos), self.param)
        negate = self.accept("keyword", "not")
        if self.accept("keyword", "in"):
            return _typed(Test(field, "not in" if negate else "in", self.literal_list(), tok.pos), self.param)
        if negate:
            raise self.fail("expected 'in' after 'not'")
        return _typed(Test(field, "is", (True,), tok.pos), self.param)

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind in ("number", "string"):
            self.i += 1
            return tok.value
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            self.i += 1
            return tok.text == "true"
        found = "the end" if tok.kind == "end" else repr(tok.text)
        raise self.fail(f"expected a number, a quoted string, true or false, found {found}")

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect("op", "[")
        values = [self.literal()]
        while self.accept("op", ","):
            values.append(self.literal())
            if len(values) > MAX_LIST:
                raise self.fail(f"a list may hold at most {MAX_LIST} values")
        self.expect("op", "]")
        return tuple(values)


def _field(tok: Token, param: str) -> str:
    name = tok.text
    for prefix in ATTRIBUTE_PREFIXES:
        if name.startswith(prefix):
            return "attributes." + name[len(prefix):]
    if name not in FIELDS:
        raise RuleError(param, f"unknown field {name!r} (fields: {', '.join(FIELDS)}, attributes.NAME)",
                        reason="unknown_field", position=tok.pos, name=name)
    return name


def _typed(test: Test, param: str) -> Test:
    """Refuse a comparison the field's type cannot make (a string compared with <, a number with "a", ...)."""
    field, op = test.field, test.op
    if field.startswith("attributes."):
        return test
    kind = "string" if field in STRING_FIELDS else "number" if field in NUMBER_FIELDS else "flag"
    if op == "is" and kind != "flag":
        raise RuleError(param, f"field {field!r} needs a comparison (e.g. {field} == ...)", position=test.pos,
                        name=field)
    if kind == "string" and op in ("<", "<=", ">", ">="):
        raise RuleError(param, f"field {field!r} is text: use ==, !=, in or not in", position=test.pos, name=field)
    for v in test.values:
        ok = isinstance(v, str) if kind == "string" else isinstance(v, bool) if kind == "flag" else (
            isinstance(v, float) and not isinstance(v, bool))
        if not ok:
            want = {"string": "a quoted string", "number": "a number", "flag": "true or false"}[kind]
            raise RuleError(param, f"field {field!r} is compared with {want}, got {v!r}", position=test.pos,
                            name=field)
    if kind == "flag" and op not in ("is", "==", "!="):
        raise RuleError(param, f"field {field!r} is true/false: use == or !=", position=test.pos, name=field)
    return test


def parse(text: str, param: str = "filter") -> Expression:
    """The Expression of `text`; RuleError naming `param`, the position and the field for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError(param, "the expression is empty")
    p = _Parser(text, param)
    node = p.expression()
    if p.tok.kind != "end":
        raise p.fail(f"unexpected {p.tok.text!r} (missing 'and' / 'or'?)")
    return Expression(text, node)


def parse_boost(text: str, param: str = "boost") -> tuple[Expression, float]:
    """`EXPR : WEIGHT`, e.g. `brand == "Acme": 0.3` (a negative weight buries)."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError(param, "the boost is empty (write EXPRESSION: WEIGHT)")
    p = _Parser(text, param)
    node = p.expression()
    p.expect("op", ":")
    tok = p.expect("number")
    if p.tok.kind != "end":
        raise p.fail(f"unexpected {p.tok.text!r} after the weight")
    weight = float(tok.value)
    if not -100.0 <= weight <= 100.0:
        raise RuleError(param, f"the weight must be between -100 and 100, got {weight:g}", position=tok.pos)
    return Expression(text[:text.rfind(":")].strip(), node), weight


# ------------------------------------------------------------------------------ evaluation (vectorised)
def _eval(node: Node, table: ItemTable, param: str) -> np.ndarray:
    if isinstance(node, Not):
        return ~_eval(node.node, table, param)
    if isinstance(node, BoolOp):
        out = _eval(node.nodes[0], table, param)
        for n in node.nodes[1:]:
            out = (out & _eval(n, table, param)) if node.op == "and" else (out | _eval(n, table, param))
        return out
    return _test(node, table, param)


def _test(t: Test, table: ItemTable, param: str) -> np.ndarray:
    op, values = t.op, t.values
    if t.field.startswith("attributes."):
        name = t.field.split(".", 1)[1]
        found = table.attribute(name)
        if found is None:
            raise RuleError(param, f"unknown attribute {name!r}: no item has it", reason="unknown_field",
                            position=t.pos, name=t.field)
        return _attribute_test(found, op, values, len(table))
    if t.field in STRING_FIELDS:
        match = table.string_mask(t.field, [str(v) for v in values])
        return ~match if op in ("!=", "not in") else match
    if t.field in FLAG_FIELDS:
        flag = table.flag(t.field)
        want = bool(values[0])
        return flag if (want if op != "!=" else not want) else ~flag
    x = table.number(t.field)
    if op in ("in", "not in"):
        match = np.isin(x, np.asarray(values, dtype=np.float64))
        return ~match if op == "not in" else match
    return _compare(x, op, float(values[0]))


def _compare(x: Any, op: str, v: Any) -> Any:
    if op == "==":
        return x == v
    if op == "!=":
        return x != v
    if op == "<":
        return x < v
    if op == "<=":
        return x <= v
    if op == ">":
        return x > v
    return x >= v


def _attribute_test(column: tuple[list[Any], np.ndarray, np.ndarray], op: str, values: Sequence[Literal],
                    n: int) -> np.ndarray:
    """An attribute column is (distinct values, item of each pair, value code of each pair): an item with a list
    value has one pair per element. The test picks the matching distinct values (few), then scatters."""
    distinct, items, codes = column
    negate = op in ("!=", "not in")
    base = "==" if op == "!=" else "in" if op == "not in" else op
    hits = np.array([_matches(d, base, values) for d in distinct], dtype=bool)
    mask = np.zeros(n, dtype=bool)
    if len(hits):
        mask[items[hits[codes]]] = True
    return ~mask if negate else mask


def _matches(value: Any, op: str, literals: Sequence[Literal]) -> bool:
    if op in ("==", "in", "is"):
        return any(_same(value, lit) for lit in literals)
    lit = literals[0]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and isinstance(lit, float) and not isinstance(lit, bool):
        return bool(_compare(float(value), op, lit))
    if isinstance(value, str) and isinstance(lit, str):
        return bool(_compare(value, op, lit))
    return False


def _same(value: Any, lit: Literal) -> bool:
    if isinstance(lit, bool) or isinstance(value, bool):
        return isinstance(lit, bool) and isinstance(value, bool) and lit == value
    if isinstance(lit, float):
        return isinstance(value, (int, float)) and float(value) == lit
    return isinstance(value, str) and value == lit
