"""The expression grammar (ANALYTICS.md section 9): every bad expression gives a
one-line error naming the factor and the column; names that clash with the
registry are refused; precedence, canonical text, lookback and the printed tree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from factorcast.factors import ANALYTICS_NAMES, REGISTRY
from factorcast.factors.expressions import (
    INPUTS,
    MAX_LENGTH,
    MAX_WINDOW,
    OPERATORS,
    Expression,
    ExpressionError,
    bars_of_panel,
    check_name,
    parse,
)
from tests.expr_oracle import Oracle, Tree, render
from tests.test_expressions_properties import random_panel, trees

# text, 1-based column of the problem, words the message must hold
BAD = [
    ("clos + 1", 1, "unknown name 'clos'"),
    ("close + volum", 9, "did you mean 'volume'"),
    ("ts_mean(close, 0)", 16, "at least 1"),
    ("ts_mean(close, -3)", 16, "must be positive"),
    ("ts_mean(close, 2.5)", 16, "whole number"),
    ("ts_mean(close, 5.0)", 16, "whole number"),
    ("ts_mean(close, True)", 16, "whole number"),
    ("ts_mean(close, d)", 16, "not an expression"),
    ("ts_mean(close, 2 + 3)", 16, "not an expression"),
    (f"ts_sum(close, {MAX_WINDOW + 1})", 15, f"at most {MAX_WINDOW}"),
    ("ts_std(close, 1)", 15, "at least 2"),
    ("correlation(close, open, 1)", 26, "at least 2"),
    ("covariance(close, open, 1)", 25, "at least 2"),
    ("ts_mean(close)", 1, "ts_mean(x, d) takes 2 arguments, got 1"),
    ("rank(close, open)", 1, "rank(x) takes 1 argument, got 2"),
    ("delay(close, 1, 2)", 1, "takes 2 arguments, got 3"),
    ("correlation(close, 5)", 1, "takes 3 arguments, got 2"),
    ("abs()", 1, "takes 1 argument, got 0"),
    ("max(close)", 1, "takes 2 arguments, got 1"),
    ("close + scale(volume, 1, 2)", 9, "takes 1 or 2 arguments, got 3"),
    ("scale(close, b=2)", 14, "unexpected argument b="),
    ("scale(close, 2, a=3)", 1, "scale(x, a=1) takes 1 argument, got 2"),
    ("ts_sum(close, d=3)", 15, "unexpected argument d="),
    ("scale(close, close)", 14, "must be a number literal"),
    ("rank(*close)", 6, "unpacking"),
    ("foo(close)", 1, "unknown operator 'foo'"),
    ("tsmean(close, 3)", 1, "did you mean 'ts_mean'"),
    ("close(1)", 1, "'close' is an input"),
    ("rank", 1, "'rank' is an operator"),
    ("close % 2", 7, "'%' is not in the grammar"),
    ("(close) // 2", 9, "'//' is not in the grammar"),
    ("close & open", 7, "'&' is not in the grammar"),
    ("+close", 1, "only unary '-'"),
    ("close > open", 1, "comparison"),
    ("close and open", 1, "'and'/'or'"),
    ("close if open else high", 1, "'if ... else'"),
    ("close.real", 1, "attribute"),
    ("close[0]", 1, "indexing"),
    ("np.log(close)", 1, "attribute"),
    ("__import__('os')", 1, "unknown operator '__import__'"),
    ("(lambda: close)", 2, "lambda"),
    ("(x := close)", 2, "':='"),
    ("close, open", 1, "tuple"),
    ("'close'", 1, "only numbers"),
    ("close + True", 9, "only numbers"),
    ("close * 1j", 9, "only numbers"),
    ("close * 1e999", 9, "out of range"),
    ("close ^^ 2", 8, "syntax error"),
    ("close +", 8, "syntax error"),
    ("ts_mean(close,, 3)", 15, "syntax error"),
    ("(close", 1, "syntax error"),
    ("", 1, "empty"),
    ("   ", 1, "empty"),
    ("1 + 2", 1, "reads no input"),
    ("  clos", 3, "unknown name 'clos'"),  # leading blanks count
    ("close +\n  vol", 11, "unknown name 'vol'"),  # a line break counts as one column
    ("é + close", 1, "unknown name 'é'"),
    ("close + é", 9, "unknown name 'é'"),  # columns are characters, not bytes
    ("é\xa0+ close", 2, "unexpected character"),
    ("'é' +", 6, "syntax error"),
    ("close # + open", 7, "comments"),  # never a silently dropped tail
    ("close\n# + open", 7, "comments"),
    ("close ^ 2 % 3", 11, "'%'"),  # after '^' -> '**': columns of the original text
    ("close\x00", 6, "unexpected character"),
    ("x" * (MAX_LENGTH + 1), MAX_LENGTH + 1, "longer than"),
]


@pytest.mark.parametrize(("text", "column", "words"), BAD, ids=[repr(b[0])[:40] for b in BAD])
def test_bad_expression_names_factor_and_column(text: str, column: int, words: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        Expression.compile("alpha_bad", text)
    err = caught.value
    message = str(err)
    assert "\n" not in message
    assert message.startswith(f"factor 'alpha_bad', column {column}: ")
    assert words in message
    assert (err.factor, err.column) == ("alpha_bad", column)
    assert isinstance(err, ValueError)


@pytest.mark.parametrize("taken", [*REGISTRY.names, *ANALYTICS_NAMES, "close", "ts_mean"])
def test_a_taken_name_is_refused(taken: str) -> None:
    with pytest.raises(ExpressionError, match=f"^factor '{taken}': .*name") as caught:
        Expression.compile(taken, "rank(close)", taken=REGISTRY.names)
    assert caught.value.column is None


@pytest.mark.parametrize("name", ["Alpha", "alpha-1", "1alpha", ""])
def test_a_factor_name_is_a_lower_case_identifier(name: str) -> None:
    with pytest.raises(ExpressionError, match="lower-case identifier"):
        check_name(name, REGISTRY.names)


def test_a_new_name_is_accepted() -> None:
    check_name("alpha_1", REGISTRY.names)
    assert Expression.compile("alpha_1", "rank(close)", taken=REGISTRY.names).name == "alpha_1"


def test_the_operator_table_is_the_specification() -> None:
    """ANALYTICS.md section 9, operator by operator, with its arity and window."""
    spec = {
        "abs": (1, False),
        "log": (1, False),
        "sign": (1, False),
        "sqrt": (1, False),
        "signedpower": (2, False),
        "max": (2, False),
        "min": (2, False),
        "delay": (1, True),
        "delta": (1, True),
        "ts_sum": (1, True),
        "ts_mean": (1, True),
        "ts_std": (1, True),
        "ts_min": (1, True),
        "ts_max": (1, True),
        "ts_rank": (1, True),
        "correlation": (2, True),
        "covariance": (2, True),
        "decay_linear": (1, True),
        "rank": (1, False),
        "scale": (1, False),
        "zscore": (1, False),
        "demean": (1, False),
    }
    assert {name: (op.arity, op.window) for name, op in OPERATORS.items()} == spec
    assert INPUTS == ("open", "high", "low", "close", "volume", "quote_volume", "returns", "vwap")


# -- meaning: the same numbers as the oracle's tree ---------------------------------

SAME = [
    # '^' is power, binding tighter than unary minus and '*', grouping from the right
    ("-close ^ 2", ("neg", ("^", ("close",), ("number", 2.0)))),
    ("close - open ^ 2", ("-", ("close",), ("^", ("open",), ("number", 2.0)))),
    ("2 * close ^ 2", ("*", ("number", 2.0), ("^", ("close",), ("number", 2.0)))),
    ("close ** 2", ("^", ("close",), ("number", 2.0))),
    ("volume ^ 0.5 ^ 2", ("^", ("volume",), ("number", 0.25))),
    ("close / open / high", ("/", ("/", ("close",), ("open",)), ("high",))),
    ("close - open - high", ("-", ("-", ("close",), ("open",)), ("high",))),
    ("scale(volume)", ("scale", ("volume",), 1.0)),
    ("scale(volume, 3)", ("scale", ("volume",), 3.0)),
    ("scale(volume, a=-2)", ("scale", ("volume",), -2.0)),
    ("delta(close,\n 2)", ("delta", ("close",), 2)),
]


@pytest.mark.parametrize(("text", "tree"), SAME, ids=[s[0] for s in SAME])
def test_text_means_the_specified_operations(text: str, tree: Tree) -> None:
    fields, present = random_panel(7)
    expected = Oracle(fields, present)(tree)
    expr = Expression.compile("meaning", text)
    actual = np.array([expr.update(b) for b in bars_of_panel(fields, present)])
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(tree=trees)
def test_canonical_text_parses_back_to_the_same_term(tree: Tree) -> None:
    term = parse("round_trip", render(tree))
    again = parse("round_trip", str(term))
    assert again == term
    assert str(again) == str(term)


# -- lookback ------------------------------------------------------------------------

LOOKBACKS = [
    # the sum of nested lookbacks: returns needs 1 bar, delay/delta d,
    # the other time-series operators d - 1
    ("close", 0),
    ("vwap", 0),
    ("returns", 1),
    ("rank(close)", 0),
    ("delay(close, 3)", 3),
    ("delta(returns, 2)", 1 + 2),
    ("ts_mean(close, 5)", 5 - 1),
    ("ts_std(ts_mean(returns, 3), 4)", 1 + (3 - 1) + (4 - 1)),
    ("correlation(close, delay(volume, 2), 5)", 2 + (5 - 1)),
    ("rank(ts_sum(close, 10)) + delay(open, 12)", max(10 - 1, 12)),
    ("decay_linear(delta(close, 1), 4) * ts_rank(returns, 3)", max(1 + 3, 1 + 2)),
]


@pytest.mark.parametrize(("text", "lookback"), LOOKBACKS, ids=[t for t, _ in LOOKBACKS])
def test_lookback_is_the_sum_of_nested_lookbacks(text: str, lookback: int) -> None:
    assert Expression.compile("lb", text).lookback == lookback


def test_tree_lists_every_node_with_kind_and_lookback() -> None:
    expr = Expression.compile("alpha", "rank(ts_mean(returns, 5)) - scale(delta(close, 3), a=-2)")
    text = expr.tree()
    lines = text.splitlines()
    assert lines[0] == f"alpha = {expr.term}   (lookback {expr.lookback} bars)"
    body = "\n".join(lines[1:])
    for fragment in (
        "x - y",
        "rank(·)",
        "ts_mean(·, d=5)",
        "returns = close / delay(close, 1) - 1",
        "scale(·, a=-2)",
        "delta(·, d=3)",
        "close",
    ):
        assert fragment in body, fragment
    assert len(lines) == 1 + 7  # one line per node
    assert "cross sectional  lookback 5" in text
    assert "time series      lookback 3" in text
