"""The population filter language: small boolean expressions over customer columns.

    optin_email
    optin_email and not optin_sms
    segment in ["gold", "silver"] and signup_date < "2025-06-01"
    profile == "store" or (recency <= 30 and region is not null)

Parsed by a hand-written tokenizer and a recursive-descent parser into a frozen AST, then
compiled to a polars expression or to parameterised SQL. Nothing is ever evaluated as Python.
Precedence: ``not`` binds tighter than ``and``, which binds tighter than ``or``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

import polars as pl

from liftlab.errors import UserError

MAX_DEPTH = 50
Comparison = Literal["==", "!=", "<", "<=", ">", ">="]


class FilterSyntaxError(UserError):
    """The filter does not parse; ``offset`` is the 0-based position of the problem."""

    def __init__(self, message: str, offset: int, text: str) -> None:
        self.offset = offset
        self.text = text
        super().__init__(f"{message} at column {offset + 1} of {text!r}")
        self.short = message


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Literal_:
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Compare:
    op: Comparison
    left: Column | Literal_
    right: Column | Literal_


@dataclass(frozen=True)
class InList:
    column: Column
    values: tuple[Literal_, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    column: Column
    negated: bool = False


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class BoolOp:
    op: Literal["and", "or"]
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Truthy:
    """A bare column: true where the column is true."""

    column: Column


Expr = Union[Compare, InList, IsNull, Not, BoolOp, Truthy]  # noqa: UP007 - runtime alias

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", pos, text)
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            out.append(_Tok("kw" if kind == "name" and word.lower() in KEYWORDS else kind,
                            word.lower() if kind == "name" and word.lower() in KEYWORDS
                            else word, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, expected: str) -> FilterSyntaxError:
        got = "the end" if self.tok.kind == "end" else repr(self.tok.text)
        return FilterSyntaxError(f"expected {expected}, found {got}", self.tok.pos, self.text)

    def take(self, kind: str, text: str | None = None) -> _Tok | None:
        if self.tok.kind == kind and (text is None or self.tok.text == text):
            tok = self.tok
            self.i += 1
            return tok
        return None

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise self.fail("a condition")
        expr = self.or_()
        if self.tok.kind != "end":
            raise self.fail("'and', 'or' or the end of the filter")
        return expr

    def or_(self) -> Expr:
        left = self.and_()
        while self.take("kw", "or"):
            left = BoolOp("or", left, self.and_())
        return left

    def and_(self) -> Expr:
        left = self.not_()
        while self.take("kw", "and"):
            left = BoolOp("and", left, self.not_())
        return left

    def not_(self) -> Expr:
        if self.take("kw", "not"):
            return Not(self.guarded(self.not_))
        return self.atom()

    def guarded(self, fn: Callable[[], Expr]) -> Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterSyntaxError(f"the filter nests deeper than {MAX_DEPTH} levels",
                                    self.tok.pos, self.text)
        try:
            return fn()
        finally:
            self.depth -= 1

    def atom(self) -> Expr:
        if self.take("op", "("):
            inner = self.guarded(self.or_)
            if not self.take("op", ")"):
                raise self.fail("')'")
            return inner
        left = self.operand()
        if self.tok.kind == "op" and self.tok.text in ("==", "!=", "<", "<=", ">", ">="):
            op = self.tok.text
            self.i += 1
            return Compare(op, left, self.operand())  # type: ignore[arg-type]
        if isinstance(left, Column):
            if self.take("kw", "is"):
                negated = bool(self.take("kw", "not"))
                if not self.take("kw", "null"):
                    raise self.fail("'null' after 'is'")
                return IsNull(left, negated)
            negated = False
            if self.tok.kind == "kw" and self.tok.text == "not" and \
                    self.toks[self.i + 1].text == "in":
                self.i += 1
                negated = True
            if self.take("kw", "in"):
                return InList(left, self.values(), negated)
            return Truthy(left)
        raise self.fail("a comparison such as == or in [...] after the value")

    def values(self) -> tuple[Literal_, ...]:
        if not self.take("op", "["):
            raise self.fail("'[' to start the list of values")
        items: list[Literal_] = []
        while True:
            value = self.operand()
            if not isinstance(value, Literal_):
                raise FilterSyntaxError("a list holds values, not column names",
                                        self.toks[self.i - 1].pos, self.text)
            items.append(value)
            if self.take("op", "]"):
                return tuple(items)
            if not self.take("op", ","):
                raise self.fail("',' or ']'")

    def operand(self) -> Column | Literal_:
        tok = self.tok
        if self.take("name"):
            return Column(tok.text)
        if self.take("number"):
            return Literal_(float(tok.text) if "." in tok.text else int(tok.text))
        if self.take("string"):
            return Literal_(re.sub(r"\\(.)", r"\1", tok.text[1:-1]))
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            self.i += 1
            return Literal_({"true": True, "false": False, "null": None}[tok.text])
        raise self.fail("a column name or a value")


def parse(text: str) -> Expr:
    """Parse a filter; raises FilterSyntaxError with the offset of the problem."""
    return _Parser(text).parse()


def columns(expr: Expr) -> set[str]:
    """The customer columns a filter reads."""
    if isinstance(expr, BoolOp):
        return columns(expr.left) | columns(expr.right)
    if isinstance(expr, Not):
        return columns(expr.operand)
    if isinstance(expr, Compare):
        return {x.name for x in (expr.left, expr.right) if isinstance(x, Column)}
    return {expr.column.name}


# -- polars ------------------------------------------------------------------------------
def to_polars(expr: Expr, schema: pl.Schema | None = None) -> pl.Expr:
    """A polars expression; rows where the condition is null are excluded. With the
    table's ``schema``, strings compared with date or datetime columns are read as dates."""
    return _pl(expr, schema or pl.Schema()).fill_null(False)


def _pl(expr: Expr, schema: pl.Schema) -> pl.Expr:
    if isinstance(expr, BoolOp):
        a, b = _pl(expr.left, schema), _pl(expr.right, schema)
        return a & b if expr.op == "and" else a | b
    if isinstance(expr, Not):
        return ~_pl(expr.operand, schema).fill_null(False)
    if isinstance(expr, Truthy):
        return pl.col(expr.column.name).cast(pl.Boolean)
    if isinstance(expr, IsNull):
        col = pl.col(expr.column.name)
        return col.is_not_null() if expr.negated else col.is_null()
    if isinstance(expr, InList):
        values = [v.value for v in expr.values]
        inside = pl.col(expr.column.name).is_in(values)
        return ~inside if expr.negated else inside
    other = {id(expr.left): expr.right, id(expr.right): expr.left}
    left = _pl_operand(expr.left, other[id(expr.left)], schema)
    right = _pl_operand(expr.right, other[id(expr.right)], schema)
    return {"==": left.eq, "!=": left.ne, "<": left.lt, "<=": left.le, ">": left.gt,
            ">=": left.ge}[expr.op](right)


def _pl_operand(x: Column | Literal_, other: Column | Literal_, schema: pl.Schema) -> pl.Expr:
    if isinstance(x, Column):
        return pl.col(x.name)
    dtype = schema.get(other.name) if isinstance(other, Column) else None
    if isinstance(x.value, str) and dtype is not None and dtype.is_temporal():
        return pl.lit(x.value).str.to_datetime(time_unit="us").cast(dtype)
    return pl.lit(x.value)


# -- SQL ---------------------------------------------------------------------------------
def _double_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_sql(expr: Expr, quote_ident: Callable[[str], str] = _double_quote,
           placeholder: str = "%s") -> tuple[str, list[Any]]:
    """Parameterised SQL text and its parameters; values are never interpolated."""
    params: list[Any] = []

    def operand(x: Column | Literal_) -> str:
        if isinstance(x, Column):
            return quote_ident(x.name)
        params.append(x.value)
        return placeholder

    def walk(e: Expr) -> str:
        if isinstance(e, BoolOp):
            return f"({walk(e.left)} {e.op.upper()} {walk(e.right)})"
        if isinstance(e, Not):
            return f"(NOT COALESCE({walk(e.operand)}, FALSE))"
        if isinstance(e, Truthy):
            return f"(CAST({quote_ident(e.column.name)} AS BOOLEAN))"
        if isinstance(e, IsNull):
            return f"({quote_ident(e.column.name)} IS {'NOT ' if e.negated else ''}NULL)"
        if isinstance(e, InList):
            items = ", ".join(operand(v) for v in e.values)
            return f"({quote_ident(e.column.name)} {'NOT ' if e.negated else ''}IN ({items}))"
        op = "<>" if e.op == "!=" else ("=" if e.op == "==" else e.op)
        return f"({operand(e.left)} {op} {operand(e.right)})"

    return f"COALESCE({walk(expr)}, FALSE)", params
