"""The population filter language, checked by independent routes: the parser's AST and
error offsets by hand; to_polars against hand-written pandas masks and against a plain-Python
row evaluator built alongside randomly generated filter text (never from the parser); to_sql
run in DuckDB against the same evaluator; hostile text refused, never executed."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from liftlab.core.errors import UserError
from liftlab.spec.filters import (
    MAX_DEPTH,
    MAX_LENGTH,
    BoolOp,
    Column,
    Compare,
    FilterSyntaxError,
    InList,
    IsNull,
    Not,
    Truthy,
    Value,
    columns,
    parse,
    to_polars,
    to_sql,
)

Row = dict[str, Any]
UTC = dt.UTC


def _frame(n: int = 80, seed: int = 7) -> pl.DataFrame:
    """Customers with every column type the language meets, about 15% nulls in each."""
    rng = np.random.default_rng(seed)

    def holes(values: list[Any]) -> list[Any]:
        return [None if rng.random() < 0.15 else v for v in values]

    day0 = dt.date(2025, 1, 1)
    return pl.DataFrame({
        "rid": list(range(n)),
        "i": holes([int(x) for x in rng.integers(-3, 4, n)]),
        "f": holes([float(x) for x in np.round(rng.normal(0, 2, n), 1)]),
        "s": holes([str(x) for x in rng.choice(["gold", "silver", "bronze", "it's"], n)]),
        "b": holes([bool(x) for x in rng.integers(0, 2, n)]),
        "d": holes([day0 + dt.timedelta(days=int(x)) for x in rng.integers(0, 365, n)]),
        "ts": holes([dt.datetime(2025, 6, 1, tzinfo=UTC) + dt.timedelta(hours=int(x))
                     for x in rng.integers(-48, 48, n)]),
    }, schema_overrides={"ts": pl.Datetime("us", "UTC")})


FRAME = _frame()
ROWS: list[Row] = FRAME.to_dicts()


def _polars_rows(text: str, frame: pl.DataFrame = FRAME) -> list[int]:
    return frame.filter(to_polars(parse(text), frame.schema))["rid"].to_list()


@functools.cache
def _duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding FRAME as ``customers`` (UTC session, like the data)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("customers", FRAME.to_arrow())
    return con


def _duckdb_rows(text: str, placeholder: str) -> list[int]:
    sql, params = to_sql(parse(text), placeholder=placeholder)  # type: ignore[arg-type]
    query = f"SELECT rid FROM customers WHERE {sql} ORDER BY rid"
    return [r[0] for r in _duckdb().execute(query, params).fetchall()]


# -- parser ------------------------------------------------------------------------------
a, b, c = Truthy(Column("a")), Truthy(Column("b")), Truthy(Column("c"))


@pytest.mark.parametrize(("text", "tree"), [
    ("a", a),
    ("a or b and c", BoolOp("or", (a, BoolOp("and", (b, c))))),
    ("a and b or c", BoolOp("or", (BoolOp("and", (a, b)), c))),
    ("not a and b", BoolOp("and", (Not(a), b))),
    ("not (a and b)", Not(BoolOp("and", (a, b)))),
    ("not a or not b and c", BoolOp("or", (Not(a), BoolOp("and", (Not(b), c))))),
    ("(a or b) and c", BoolOp("and", (BoolOp("or", (a, b)), c))),
    ("a or b or c", BoolOp("or", (a, b, c))),
    ("not not a", Not(Not(a))),
    ("A AND NOT b", BoolOp("and", (Truthy(Column("A")), Not(b)))),
    ("x >= -2.5e1", Compare(">=", Column("x"), Value(-25.0))),
    ("3 < x", Compare("<", Value(3), Column("x"))),
    ("x != y", Compare("!=", Column("x"), Column("y"))),
    ("flag == TRUE", Compare("==", Column("flag"), Value(True))),
    ("s == 'it\\'s'", Compare("==", Column("s"), Value("it's"))),
    ('s in ["gold", "silver"]', InList(Column("s"), (Value("gold"), Value("silver")))),
    ("i not in [1, 2.5]", InList(Column("i"), (Value(1), Value(2.5)), negated=True)),
    ("r is null", IsNull(Column("r"))),
    ("r is not null", IsNull(Column("r"), negated=True)),
    ("not x in [1]", Not(InList(Column("x"), (Value(1),)))),
])
def test_parse_tree_and_precedence(text: str, tree: object):
    assert parse(text) == tree


@pytest.mark.parametrize(("text", "offset", "says"), [
    ("", 0, "expected a condition"),
    ("a and", 5, "expected a column name or a value, found the end"),
    ("(a or b", 7, "expected ')' to close the '(' at character 1"),
    ("a b", 2, "expected 'and', 'or' or the end of the filter, found 'b'"),
    ("x = 1", 2, "write '=='"),
    ("x == 1 && y", 7, "write 'and'"),
    ("x == 'open", 5, "never closed"),
    ("x == 1; y", 6, "unexpected character ';'"),
    ("x in []", 6, "the list is empty"),
    ("x in [1, 'a']", 9, "mixes numbers and text"),
    ("x in [null]", 6, "cannot hold null"),
    ("x in [y]", 6, "not column names"),
    ("x in 1", 5, "expected '[' to start the list"),
    ("x == null", 5, "'is null'"),
    ("1 == 1", 0, "needs a column on one side"),
    ("5", 1, "expected a comparison"),
    ("x is 3", 5, "expected 'null' after 'is'"),
    ("x ==", 4, "expected a column name or a value"),
    ("x ＝ 1", 2, "unexpected character"),
    ("x == ٣", 5, "unexpected character"),
])
def test_syntax_errors_say_where_and_what(text: str, offset: int, says: str):
    with pytest.raises(FilterSyntaxError) as err:
        parse(text)
    assert err.value.offset == offset
    assert says in err.value.message
    assert f"character {offset + 1}" in str(err.value)  # the user-facing text has it too


def test_columns():
    expr = parse('segment in ["gold"] and (recency < 30 or not optin) and x > y and z is null')
    assert columns(expr) == {"segment", "recency", "optin", "x", "y", "z"}


# -- hostile input -----------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "__import__('os').system('touch /tmp/liftlab_pwned')",
    "exec('import os')",
    "a.b == 1",
    "lambda: 1",
    "[x for x in ()]",
    "segment == 'a'; import os",
    "x == `rm -rf /`",
    "x == {1: 2}",
])
def test_hostile_text_is_refused(text: str):
    with pytest.raises(FilterSyntaxError):
        parse(text)


def test_nesting_is_bounded_without_recursion_errors():
    ok = "(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH
    assert parse(ok) == Truthy(Column("x"))
    for deep in ("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1),
                 "not " * (MAX_DEPTH + 1) + "x",
                 "(" * 5000):
        with pytest.raises(FilterSyntaxError, match="nests deeper"):
            parse(deep)


def test_long_flat_chains_compile_without_deep_recursion():
    """800 terms stay one flat and/or node: compiling them uses a few stack frames."""
    text = " or ".join(f"i == {k % 7 - 3}" for k in range(800))
    expr = parse(text)
    assert isinstance(expr, BoolOp) and len(expr.operands) == 800
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)
    try:
        predicate = to_polars(expr, FRAME.schema)
        sql, params = to_sql(expr)
    finally:
        sys.setrecursionlimit(limit)
    assert FRAME.filter(predicate).height == FRAME.filter(pl.col("i").is_not_null()).height
    assert len(params) == 800 and sql.count("%s") == 800


def test_overlong_text_is_refused():
    with pytest.raises(FilterSyntaxError, match="longer than"):
        parse("x == 1 or " * (MAX_LENGTH // 10) + "x == 2")


def test_sql_values_are_parameters_never_text():
    evil = "'); DROP TABLE customers; --"
    sql, params = to_sql(parse(f's == "{evil}" or s in ["x", "{evil}"]'))
    assert evil not in sql and params == [evil, "x", evil]
    assert _duckdb_rows(f's == "{evil}"', "?") == []
    assert _duckdb().execute("SELECT COUNT(*) FROM customers").fetchone() == (FRAME.height,)


def test_sql_identifiers_are_quoted_by_the_caller_function():
    sql, params = to_sql(parse("a > 1 and not b"), quote_ident=lambda n: f"`{n}`",
                         placeholder="$1")
    assert sql == "(COALESCE(`a` > $1, FALSE) AND (NOT COALESCE(CAST(`b` AS BOOLEAN), FALSE)))"
    assert params == [1]
    with pytest.raises(ValueError, match="placeholder"):
        to_sql(parse("a"), placeholder=":1")  # type: ignore[arg-type]


# -- semantics: hand-written pandas masks ------------------------------------------------
PANDAS = FRAME.to_pandas()


def _mask(series: pd.Series) -> pd.Series:
    return series.astype("boolean").fillna(False).astype(bool)


@pytest.mark.parametrize(("text", "mask"), [
    ("b", lambda p: _mask(p.b)),
    ("b and not i", lambda p: _mask(p.b) & ~_mask(p.i.astype("Int64") != 0)),
    ('s in ["gold", "silver"] and d < "2025-06-01"',
     lambda p: _mask(p.s.isin(["gold", "silver"]) & p.s.notna())
     & _mask(pd.to_datetime(p.d) < pd.Timestamp("2025-06-01"))),
    ("f > 1 or i is null", lambda p: _mask(p.f > 1) | p.i.isna()),
    ("not f > 1", lambda p: ~_mask(p.f > 1)),
    ("f != 1.5", lambda p: _mask(p.f != 1.5) & p.f.notna()),
    ('s not in ["gold"]', lambda p: _mask(~p.s.isin(["gold"])) & p.s.notna()),
    ('ts >= "2025-06-01T06:00+02:00"',
     lambda p: _mask(p.ts >= pd.Timestamp("2025-06-01T04:00", tz="UTC"))),
    ("i < f", lambda p: _mask(p.i < p.f) & p.i.notna() & p.f.notna()),
])
def test_to_polars_matches_pandas(text: str, mask: Callable[[pd.DataFrame], pd.Series]):
    expected = PANDAS.rid[mask(PANDAS).to_numpy()].tolist()
    assert _polars_rows(text) == expected
    assert 0 < len(expected) < FRAME.height  # the case discriminates


def test_conditions_on_nulls_are_false():
    frame = pl.DataFrame({"rid": [0, 1, 2], "x": [1, None, 3]})
    assert _polars_rows("x != 1", frame) == [2]
    assert _polars_rows("not x == 1", frame) == [1, 2]
    assert _polars_rows("x not in [1]", frame) == [2]
    assert _polars_rows("x > 0 or x is null", frame) == [0, 1, 2]


def test_bad_date_text_names_the_column():
    with pytest.raises(UserError, match="d holds dates but 'June 1st' is not a date"):
        to_polars(parse('d < "June 1st"'), FRAME.schema)


# -- property: random filters, three evaluators ------------------------------------------
Gen = tuple[str, Callable[[Row], bool], int]  # text, row predicate, binding level

INT, FLOAT = st.integers(-3, 3), st.sampled_from([-1.5, 0.0, 0.5, 2.0])
WORD = st.sampled_from(["gold", "silver", "bronze", "it's", "zinc"])
DAY = st.dates(dt.date(2024, 12, 1), dt.date(2026, 1, 31))
HOUR = st.integers(-60, 60).map(lambda h: dt.datetime(2025, 6, 1, tzinfo=UTC)
                                + dt.timedelta(hours=h))
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda x, y: x == y, "!=": lambda x, y: x != y, "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y, ">": lambda x, y: x > y, ">=": lambda x, y: x >= y}


def _quote(word: str) -> str:
    return '"' + word + '"' if "'" in word else "'" + word + "'"


def _compare(col: str, op: str, value: Any, text: str, flip: bool) -> Gen:
    def fn(r: Row) -> bool:
        x = r[col]
        return x is not None and (OPS[op](value, x) if flip else OPS[op](x, value))
    return (f"{text} {op} {col}" if flip else f"{col} {op} {text}"), fn, 3


@st.composite
def atoms(draw: st.DrawFn) -> Gen:
    kind = draw(st.sampled_from(["num", "str", "date", "ts", "truthy", "null", "in", "cols"]))
    op = draw(st.sampled_from(list(OPS)))
    flip = draw(st.booleans())
    if kind == "num":
        col = draw(st.sampled_from(["i", "f"]))
        value = draw(st.one_of(INT, FLOAT))
        return _compare(col, op, value, repr(value), flip)
    if kind == "str":
        word = draw(WORD)
        return _compare("s", op, word, _quote(word), flip)
    if kind == "date":
        day = draw(DAY)
        return _compare("d", op, day, f'"{day.isoformat()}"', flip)
    if kind == "ts":
        stamp = draw(HOUR)
        shown = stamp.replace(tzinfo=None).isoformat()  # naive text: the column is UTC
        return _compare("ts", op, stamp, f'"{shown}"', flip)
    if kind == "truthy":
        col = draw(st.sampled_from(["b", "i"]))
        return col, lambda r: bool(r[col]), 3
    if kind == "null":
        col = draw(st.sampled_from(["i", "f", "s", "b", "d", "ts"]))
        negated = draw(st.booleans())
        text = f"{col} is {'not ' if negated else ''}null"
        return text, lambda r: (r[col] is not None) == negated, 3
    if kind == "in":
        negated = draw(st.booleans())
        if draw(st.booleans()):
            col, values = "s", draw(st.lists(WORD, min_size=1, max_size=3))
            shown = [_quote(v) for v in values]
        else:
            col, values = "i", draw(st.lists(INT, min_size=1, max_size=3))
            shown = [str(v) for v in values]
        text = f"{col} {'not ' if negated else ''}in [{', '.join(shown)}]"
        return text, lambda r: r[col] is not None and ((r[col] in values) != negated), 3
    left, right = draw(st.sampled_from([("i", "f"), ("f", "i"), ("i", "i")]))
    return (f"{left} {op} {right}",
            lambda r: r[left] is not None and r[right] is not None and OPS[op](r[left],
                                                                             r[right]), 3)


def _wrap(gen: Gen, level: int, extra: bool) -> str:
    """Parentheses where precedence needs them, and sometimes where it does not."""
    text, _, own = gen
    return f"({text})" if own < level or extra else text


def _combine(children: st.SearchStrategy[Gen]) -> st.SearchStrategy[Gen]:
    @st.composite
    def node(draw: st.DrawFn) -> Gen:
        kind = draw(st.sampled_from(["and", "or", "not"]))
        if kind == "not":
            child = draw(children)
            fn = child[1]
            return f"not {_wrap(child, 3, draw(st.booleans()))}", lambda r: not fn(r), 3
        left, right = draw(children), draw(children)
        power = 2 if kind == "and" else 1
        text = (f"{_wrap(left, power, draw(st.booleans()))} {kind} "
                f"{_wrap(right, power + 1, draw(st.booleans()))}")
        if kind == "and":
            return text, lambda r: left[1](r) and right[1](r), 2
        return text, lambda r: left[1](r) or right[1](r), 1
    return node()


FILTERS = st.recursive(atoms(), _combine, max_leaves=8)


@given(FILTERS)
def test_polars_and_duckdb_agree_with_a_plain_python_evaluator(gen: Gen):
    text, fn, _ = gen
    expected = [r["rid"] for r in ROWS if fn(r)]
    assert _polars_rows(text) == expected, text
    assert _duckdb_rows(text, "?") == expected, text
    assert _duckdb_rows(text, "$1") == expected, text
    pg_sql, pg_params = to_sql(parse(text))
    q_sql, q_params = to_sql(parse(text), placeholder="?")
    assert pg_sql.replace("%s", "?") == q_sql and pg_params == q_params


@pytest.mark.parametrize(("dtype", "where", "holds"), [
    (pl.Float64, "profile == 'store'", "numbers"),
    (pl.Int64, "profile in ['a', 'b']", "numbers"),
    (pl.String, "profile > 3", "text"),
])
def test_text_compared_with_numbers_names_the_column(dtype, where, holds):
    """Found by the wide exit-code search: a text column turned numeric by nulls/NaN made the
    filter's comparison a polars ComputeError (exit 2)."""
    from liftlab.core.errors import UserError
    from liftlab.spec.filters import parse, to_polars

    with pytest.raises(UserError, match=rf"table customers, column profile: population filter: "
                                        rf"profile holds {holds}"):
        to_polars(parse(where), pl.Schema({"profile": dtype}))
