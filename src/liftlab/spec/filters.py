"""The population filter language: small boolean expressions over customer columns.

    optin_email
    optin_email and not optin_sms
    segment in ["gold", "silver"] and signup_date < "2025-06-01"
    profile == "store" or (recency <= 30 and region is not null)

A hand-written tokenizer and a Pratt parser turn the text into a frozen AST, which compiles
to a polars expression or to parameterised SQL. Nothing is ever evaluated as Python.

Precedence: ``not`` binds tighter than ``and``, which binds tighter than ``or``.
Nulls: a condition on a null value (``x > 5``, ``x in [...]``, a bare null ``optin``) is
false, so such rows are excluded; ``not``, ``and``, ``or`` then combine plain true/false
(``not x > 5`` keeps rows where x is null). Use ``is null`` / ``is not null`` to test nulls.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Union
from zoneinfo import ZoneInfo

from liftlab.core.errors import Problem, UserError

if TYPE_CHECKING:  # polars is imported where filters are compiled: `validate` never needs it
    import polars as pl

EXAMPLE = 'a filter looks like: optin_email and segment in ["gold", "silver"]'
MAX_LENGTH = 10_000
MAX_DEPTH = 50
Scalar = Union[str, int, float, bool, None]  # noqa: UP007 - runtime alias
CompareOp = Literal["==", "!=", "<", "<=", ">", ">="]
Placeholder = Literal["%s", "?", "$1"]


class FilterSyntaxError(UserError):
    """The filter does not parse; ``offset`` is the 0-based character where it goes wrong."""

    def __init__(self, message: str, offset: int, text: str = "") -> None:
        self.message = message
        self.offset = offset
        self.text = text
        where = f"character {offset + 1}" + (f" of {text!r}" if text else "")
        super().__init__([Problem(f"invalid filter: {message} (at {where})", hint=EXAMPLE)])


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Value:
    value: Scalar


@dataclass(frozen=True)
class Compare:
    op: CompareOp
    left: Column | Value
    right: Column | Value


@dataclass(frozen=True)
class InList:
    column: Column
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    column: Column
    negated: bool = False


@dataclass(frozen=True)
class Truthy:
    """A bare column: true where the column is true."""

    column: Column


@dataclass(frozen=True)
class Not:
    operand: Expr


@dataclass(frozen=True)
class BoolOp:
    """``and`` / ``or`` over two or more operands (flat, so long chains stay shallow)."""

    op: Literal["and", "or"]
    operands: tuple[Expr, ...]


Expr = Union[Compare, InList, IsNull, Truthy, Not, BoolOp]  # noqa: UP007 - runtime alias

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE | re.ASCII)
KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
BINDING = {"or": 1, "and": 2}


@dataclass(frozen=True)
class _Tok:
    kind: Literal["number", "string", "op", "name", "kw", "end"]
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FilterSyntaxError(_bad_character(text, pos), pos, text)
        kind, word = m.lastgroup, m.group()
        if kind == "name" and word.lower() in KEYWORDS:
            out.append(_Tok("kw", word.lower(), pos))
        elif kind != "ws":
            out.append(_Tok(kind, word, pos))  # type: ignore[arg-type]
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


def _bad_character(text: str, pos: int) -> str:
    """Why ``text[pos]`` cannot start a token, with the usual slips from other languages."""
    for wrong, right in (("&&", "and"), ("||", "or"), ("=", "=="), ("!", "not"), ("&", "and"),
                         ("|", "or")):
        if text.startswith(wrong, pos):
            return f"unexpected {wrong!r}; write {right!r}"
    if text[pos] in "\"'":
        return "this text is never closed by its quote"
    return f"unexpected character {text[pos]!r}"


class _Parser:
    """Pratt parser: prefix ``not`` and parentheses, infix ``and`` / ``or`` by binding power."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def error(self, message: str, pos: int | None = None) -> FilterSyntaxError:
        return FilterSyntaxError(message, self.tok.pos if pos is None else pos, self.text)

    def expected(self, what: str) -> FilterSyntaxError:
        got = "the end of the filter" if self.tok.kind == "end" else repr(self.tok.text)
        return self.error(f"expected {what}, found {got}")

    def take(self, kind: str, text: str | None = None) -> _Tok | None:
        tok = self.tok
        if tok.kind == kind and (text is None or tok.text == text):
            self.i += 1
            return tok
        return None

    def parse(self) -> Expr:
        if self.tok.kind == "end":
            raise self.expected("a condition such as optin_email or segment == \"gold\"")
        expr = self.expr(0)
        if self.tok.kind != "end":
            raise self.expected("'and', 'or' or the end of the filter")
        return expr

    def expr(self, min_power: int) -> Expr:
        left = self.prefix()
        while self.tok.kind == "kw" and self.tok.text in BINDING:
            op = self.tok.text
            power = BINDING[op]
            if power < min_power:
                break
            self.i += 1
            right = self.expr(power + 1)
            parts = left.operands if isinstance(left, BoolOp) and left.op == op else (left,)
            left = BoolOp(op, (*parts, right))  # type: ignore[arg-type]
        return left

    def nested(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"the filter nests deeper than {MAX_DEPTH} levels; simplify it",
                             pos)

    def prefix(self) -> Expr:
        start = self.tok.pos
        if self.take("kw", "not"):
            self.nested(start)
            inner = Not(self.prefix())
            self.depth -= 1
            return inner
        if self.take("op", "("):
            self.nested(start)
            inner = self.expr(0)
            if not self.take("op", ")"):
                raise self.expected("')' to close the '(' at character " f"{start + 1}")
            self.depth -= 1
            return inner
        return self.predicate()

    def predicate(self) -> Expr:
        start = self.tok
        left = self.operand()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            op = self.tok.text
            self.i += 1
            right_tok = self.tok
            right = self.operand()
            for side, tok in ((left, start), (right, right_tok)):
                if isinstance(side, Value) and side.value is None:
                    raise self.error("compare with null using 'is null' or 'is not null'",
                                     tok.pos)
            if isinstance(left, Value) and isinstance(right, Value):
                raise self.error("a comparison needs a column on one side", start.pos)
            return Compare(op, left, right)  # type: ignore[arg-type]
        if isinstance(left, Value):
            raise self.expected("a comparison (==, !=, <, <=, >, >=) after the value")
        if self.take("kw", "is"):
            negated = self.take("kw", "not") is not None
            if not self.take("kw", "null"):
                raise self.expected("'null' after 'is'" if not negated else "'null' after 'is not'")
            return IsNull(left, negated)
        if self.tok.kind == "kw" and self.tok.text == "not" and \
                self.toks[self.i + 1].kind == "kw" and self.toks[self.i + 1].text == "in":
            self.i += 2
            return InList(left, self.values(), negated=True)
        if self.take("kw", "in"):
            return InList(left, self.values())
        return Truthy(left)

    def values(self) -> tuple[Value, ...]:
        if not self.take("op", "["):
            raise self.expected("'[' to start the list of values")
        if self.tok.kind == "op" and self.tok.text == "]":
            raise self.error("the list is empty; put at least one value in [...]")
        items: list[Value] = []
        kinds: set[str] = set()
        while True:
            tok = self.tok
            item = self.operand()
            if isinstance(item, Column):
                raise self.error("a list holds values (numbers, \"text\", true/false), not "
                                 f"column names; quote it if you meant the text \"{tok.text}\"",
                                 tok.pos)
            if item.value is None:
                raise self.error("a list cannot hold null; add 'or COLUMN is null' instead",
                                 tok.pos)
            kinds.add(_kind(item.value))
            if len(kinds) > 1:
                raise self.error(f"a list mixes {' and '.join(sorted(kinds))}; use one kind",
                                 tok.pos)
            items.append(item)
            if self.take("op", "]"):
                return tuple(items)
            if not self.take("op", ","):
                raise self.expected("',' or ']'")

    def operand(self) -> Column | Value:
        tok = self.tok
        if self.take("name"):
            return Column(tok.text)
        if self.take("number"):
            number = float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text)
            return Value(number)
        if self.take("string"):
            return Value(re.sub(r"\\(.)", r"\1", tok.text[1:-1], flags=re.DOTALL))
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            self.i += 1
            return Value({"true": True, "false": False, "null": None}[tok.text])
        raise self.expected("a column name or a value")


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true/false"
    return "text" if isinstance(value, str) else "numbers"


def parse(text: str) -> Expr:
    """Parse a filter; raises FilterSyntaxError saying where and what was expected."""
    if len(text) > MAX_LENGTH:
        raise FilterSyntaxError(f"the filter is longer than {MAX_LENGTH} characters",
                                MAX_LENGTH, "")
    return _Parser(text).parse()


def columns(expr: Expr) -> set[str]:
    """The customer columns a filter reads."""
    if isinstance(expr, BoolOp):
        return set().union(*(columns(e) for e in expr.operands))
    if isinstance(expr, Not):
        return columns(expr.operand)
    if isinstance(expr, Compare):
        return {x.name for x in (expr.left, expr.right) if isinstance(x, Column)}
    return {expr.column.name}


def truthy_columns(expr: Expr) -> set[str]:
    """The columns a filter reads as true/false on their own (``where: optin_email``)."""
    if isinstance(expr, BoolOp):
        return set().union(*(truthy_columns(e) for e in expr.operands))
    if isinstance(expr, Not):
        return truthy_columns(expr.operand)
    return {expr.column.name} if isinstance(expr, Truthy) else set()


# -- polars ------------------------------------------------------------------------------
def to_polars(expr: Expr, schema: pl.Schema | None = None) -> pl.Expr:
    """A boolean polars expression, never null. With the table's ``schema``, text compared
    with a date or datetime column is read as a date (naive times in the column's zone)."""
    import polars as pl

    return _pl(expr, schema or pl.Schema())


def _pl(expr: Expr, schema: pl.Schema) -> pl.Expr:
    import polars as pl

    if isinstance(expr, BoolOp):
        parts = [_pl(e, schema) for e in expr.operands]
        return pl.all_horizontal(parts) if expr.op == "and" else pl.any_horizontal(parts)
    if isinstance(expr, Not):
        return ~_pl(expr.operand, schema)
    if isinstance(expr, IsNull):
        col = pl.col(expr.column.name)
        return col.is_not_null() if expr.negated else col.is_null()
    if isinstance(expr, Truthy):
        atom = pl.col(expr.column.name).cast(pl.Boolean)
    elif isinstance(expr, InList):
        dtype = schema.get(expr.column.name)
        inside = pl.col(expr.column.name).is_in(
            [_typed(v.value, expr.column.name, dtype) for v in expr.values])
        atom = ~inside if expr.negated else inside
    else:
        left = _pl_operand(expr.left, expr.right, schema)
        right = _pl_operand(expr.right, expr.left, schema)
        atom = {"==": left.eq, "!=": left.ne, "<": left.lt, "<=": left.le, ">": left.gt,
                ">=": left.ge}[expr.op](right)
    return atom.fill_null(False)


def _pl_operand(x: Column | Value, other: Column | Value, schema: pl.Schema) -> pl.Expr:
    import polars as pl

    if isinstance(x, Column):
        return pl.col(x.name)
    if isinstance(other, Column):
        return pl.lit(_typed(x.value, other.name, schema.get(other.name)))
    return pl.lit(x.value)


def _typed(value: Scalar, column: str, dtype: pl.DataType | None) -> object:
    """Text compared with a temporal column becomes a date or datetime of that column; text
    compared with numbers (or a number with text) is refused naming the column."""
    import polars as pl

    _comparable(value, column, dtype)
    if not isinstance(value, str) or dtype is None or not dtype.is_temporal():
        return value
    try:
        if dtype == pl.Date:
            return dt.date.fromisoformat(value)
        if isinstance(dtype, pl.Datetime):
            stamp = dt.datetime.fromisoformat(value)
            zone = dtype.time_zone
            if stamp.tzinfo is None:
                return stamp.replace(tzinfo=ZoneInfo(zone)) if zone else stamp
            return stamp.astimezone(ZoneInfo(zone)) if zone else (
                stamp.astimezone(dt.UTC).replace(tzinfo=None))
    except ValueError:
        pass
    else:
        return value
    example = "2025-06-01" if dtype == pl.Date else "2025-06-01 or 2025-06-01T08:00"
    raise UserError([Problem(f"population filter: {column} holds dates but {value!r} is not "
                             "a date", table="customers", column=column,
                             hint=f"write it like {example!r}")])


def _comparable(value: Scalar, column: str, dtype: pl.DataType | None) -> None:
    import polars as pl

    if dtype is None:
        return
    text = isinstance(value, str)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if (text and dtype.is_numeric()) or (number and dtype == pl.String):
        holds = "numbers" if dtype.is_numeric() else "text"
        raise UserError([Problem(f"population filter: {column} holds {holds} ({dtype}) but is "
                                 f"compared with {value!r}", table="customers", column=column,
                                 hint="check the column's type in the customers table")])


# -- SQL ---------------------------------------------------------------------------------
def _double_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def to_sql(expr: Expr, quote_ident: Callable[[str], str] = _double_quote,
           placeholder: Placeholder = "%s") -> tuple[str, list[object]]:
    """SQL text for a WHERE clause and its parameters; values are never put in the text.

    ``placeholder`` is ``%s`` (psycopg), ``?`` (DuckDB, Spark) or ``$1`` (numbered $1, $2...).
    Like to_polars, every condition on a null is false, so the result is never null.
    """
    if placeholder not in ("%s", "?", "$1"):
        raise ValueError(f"placeholder must be '%s', '?' or '$1', got {placeholder!r}")
    params: list[object] = []

    def param(value: Scalar) -> str:
        params.append(value)
        return f"${len(params)}" if placeholder == "$1" else placeholder

    def operand(x: Column | Value) -> str:
        return quote_ident(x.name) if isinstance(x, Column) else param(x.value)

    def walk(e: Expr) -> str:
        if isinstance(e, BoolOp):
            return "(" + f" {e.op.upper()} ".join(walk(x) for x in e.operands) + ")"
        if isinstance(e, Not):
            return f"(NOT {walk(e.operand)})"
        if isinstance(e, IsNull):
            return f"({quote_ident(e.column.name)} IS {'NOT ' if e.negated else ''}NULL)"
        if isinstance(e, Truthy):
            atom = f"CAST({quote_ident(e.column.name)} AS BOOLEAN)"
        elif isinstance(e, InList):
            items = ", ".join(param(v.value) for v in e.values)
            atom = f"{quote_ident(e.column.name)} {'NOT ' if e.negated else ''}IN ({items})"
        else:
            op = {"==": "=", "!=": "<>"}.get(e.op, e.op)
            atom = f"{operand(e.left)} {op} {operand(e.right)}"
        return f"COALESCE({atom}, FALSE)"

    return walk(expr), params
