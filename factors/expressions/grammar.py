"""The expression grammar of ANALYTICS.md section 9, parsed with :mod:`ast` against a
whitelist of node types.  The text is never evaluated.

Grammar: numbers; the inputs ``open, high, low, close, volume, quote_volume,
returns, vwap``; ``+ - * /``; ``^`` (power); unary ``-``; parentheses; calls of
the operators of :data:`OPERATORS` with their exact arities.  Choices made here:

* ``^`` is power with the usual mathematical precedence: it binds tighter than
  ``* /`` and unary minus and groups from the right (``-x ^ 2 = -(x ^ 2)``,
  ``2 ^ 3 ^ 2 = 2 ^ 9``).  Python's ``**`` has exactly that precedence, so ``^``
  is read as ``**`` and ``**`` is accepted as the same operator.  (Python's own
  ``^`` would bind looser than ``+``: ``close - open ^ 2`` would square the
  difference.)
* Windows (``d``) are whole-number literals, at least 1 (at least 2 for
  ``ts_std``, ``covariance``, ``correlation``, whose ddof=1 needs two values)
  and at most :data:`MAX_WINDOW`.
* ``scale``'s ``a`` is a number literal (``scale(x)``, ``scale(x, 2)``,
  ``scale(x, a=-1)``); ``signedpower``'s exponent may be any expression.
* Unary ``+``, ``%``, ``//``, comparisons, attributes, keywords other than
  ``a``, comments (``#``) and everything else outside the grammar are errors, as
  is an expression that reads no input.  Line breaks and tabs count as spaces (a
  YAML block); other control characters are errors.
* An error is one line naming the factor and the 1-based column in the text:
  ``factor 'alpha', column 9: unknown name 'clos' (did you mean 'close'?)``.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Iterable
from typing import Final

from factorcast.factors.expressions.bars import INPUTS
from factorcast.factors.expressions.terms import (
    MAX_WINDOW,
    OPERATORS,
    ExpressionError,
    OpSpec,
    Term,
)
from factorcast.factors.registry import ANALYTICS_NAMES

__all__ = ["MAX_LENGTH", "check_name", "parse"]
#: The longest expression text accepted.
MAX_LENGTH: Final = 10_000

_BINARY: Final[dict[type[ast.operator], str]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Pow: "^",
}
_FOREIGN_BINARY: Final[dict[type[ast.operator], str]] = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
}


def check_name(name: str, taken: Iterable[str] = ()) -> None:
    """Raise :class:`ExpressionError` unless ``name`` can name a new factor: a
    lower-case identifier that is neither in ``taken`` (the registry's names) nor
    an analytics name, an input or an operator."""
    if not name.isidentifier() or name != name.lower():
        raise ExpressionError(name, None, "a factor name must be a lower-case identifier")
    if name in set(taken) or name in ANALYTICS_NAMES:
        raise ExpressionError(name, None, "the name is already taken in the factor registry")
    if name in INPUTS or name in OPERATORS:
        raise ExpressionError(name, None, "the name is an input or operator of the grammar")


def parse(name: str, text: str) -> Term:
    """Parse ``text`` into a :class:`Term`, or raise :class:`ExpressionError`."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(name, MAX_LENGTH + 1, f"longer than {MAX_LENGTH} characters")
    flat = text.translate({ord(c): " " for c in "\t\n\r\f\v"})
    for i, ch in enumerate(flat):
        if ch == "#":  # Python would take the rest as a comment and drop it
            raise ExpressionError(name, i + 1, "comments (#) are not in the grammar")
        if not ch.isprintable():
            raise ExpressionError(name, i + 1, f"unexpected character {ch!r}")
    # '^' -> '**'; origin[i] is the 0-based column in ``flat`` of source character i
    source_chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(flat):
        source_chars.append("**" if ch == "^" else ch)
        origin.extend([i, i] if ch == "^" else [i])
    source = "".join(source_chars)
    origin.append(len(flat))
    lead = len(source) - len(source.lstrip(" "))
    body = source[lead:]
    if not body.strip():
        raise ExpressionError(name, 1, "empty expression")
    try:
        tree = ast.parse(body, mode="eval")
    except SyntaxError as e:
        at = e.offset if e.offset is not None and 1 <= e.offset <= len(body) else len(body) + 1
        column = origin[min(lead + at - 1, len(source))] + 1
        raise ExpressionError(name, column, f"syntax error: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes, absurd nesting
        raise ExpressionError(name, 1, f"cannot parse: {e}") from None
    builder = _Builder(name, body.encode(), origin, lead)
    term = builder.build(tree.body)
    if not term.inputs():
        raise ExpressionError(name, 1, f"reads no input (one of {', '.join(INPUTS)})")
    return term


class _Builder:
    def __init__(self, name: str, body: bytes, origin: list[int], lead: int) -> None:
        self.name = name
        self.body = body
        self.origin = origin
        self.lead = lead

    def column(self, node: ast.AST) -> int:
        """1-based column in the original text of ``node`` (ast counts UTF-8 bytes)."""
        offset = getattr(node, "col_offset", 0)
        chars = len(self.body[:offset].decode("utf-8", errors="ignore"))
        return self.origin[self.lead + chars] + 1

    def operator_column(self, node: ast.BinOp) -> int:
        """1-based column of a binary operator: the first character after the left
        operand that is neither a space nor a closing parenthesis."""
        start = node.left.end_col_offset or 0
        gap = self.body[start : node.right.col_offset]
        skip = len(gap) - len(gap.lstrip(b" )"))
        chars = len(self.body[: start + skip].decode("utf-8", errors="ignore"))
        return self.origin[self.lead + chars] + 1

    def fail(self, node: ast.AST, problem: str) -> ExpressionError:
        return ExpressionError(self.name, self.column(node), problem)

    def build(self, node: ast.expr) -> Term:
        col = self.column(node)
        if isinstance(node, ast.Constant):
            return Term("number", value=self.number(node), column=col)
        if isinstance(node, ast.Name):
            return self.name_term(node, col)
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.USub):
                raise self.fail(node, "only unary '-' is in the grammar")
            inner = self.build(node.operand)
            if inner.op == "number" and inner.value is not None:
                return Term("number", value=-inner.value, column=col)
            return Term("neg", (inner,), column=col)
        if isinstance(node, ast.BinOp):
            symbol = _BINARY.get(type(node.op))
            if symbol is None:
                foreign = _FOREIGN_BINARY.get(type(node.op), type(node.op).__name__)
                raise ExpressionError(
                    self.name,
                    self.operator_column(node),
                    f"operator {foreign!r} is not in the grammar (+ - * / ^)",
                )
            return Term(symbol, (self.build(node.left), self.build(node.right)), column=col)
        if isinstance(node, ast.Call):
            return self.call(node, col)
        raise self.fail(node, f"{_describe(node)} is not in the grammar")

    def number(self, node: ast.Constant) -> float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, f"only numbers are allowed, not {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.fail(node, "number out of range")
        return number

    def name_term(self, node: ast.Name, col: int) -> Term:
        if node.id in INPUTS:
            return Term(node.id, column=col)
        if node.id in OPERATORS:
            raise self.fail(node, f"{node.id!r} is an operator: call it as {_sig(node.id)}")
        raise self.fail(node, f"unknown name {node.id!r}{_suggest(node.id, INPUTS)}")

    def call(self, node: ast.Call, col: int) -> Term:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node, f"{_describe(node.func)} cannot be called")
        fname = node.func.id
        spec = OPERATORS.get(fname)
        if spec is None:
            if fname in INPUTS:
                raise self.fail(node, f"{fname!r} is an input, not an operator")
            known = tuple(OPERATORS)
            raise self.fail(node, f"unknown operator {fname!r}{_suggest(fname, known)}")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail(arg, "unpacking (*) is not in the grammar")
        positional = list(node.args)
        extra: ast.expr | None = None
        for kw in node.keywords:
            if spec.optional is None or kw.arg != spec.optional[0] or extra is not None:
                what = "**" if kw.arg is None else f"{kw.arg}="
                raise self.fail(kw, f"unexpected argument {what} in {spec.signature()}")
            extra = kw.value
        least = spec.arity + int(spec.window)
        most = least + (1 if spec.optional and extra is None else 0)
        if not least <= len(positional) <= most:
            expected = str(least) if least == most else f"{least} or {most}"
            plural = "" if expected == "1" else "s"
            raise self.fail(
                node,
                f"{spec.signature()} takes {expected} argument{plural}, got {len(positional)}",
            )
        args = tuple(self.build(a) for a in positional[: spec.arity])
        window = self.window(spec, positional[spec.arity]) if spec.window else None
        value = None
        if spec.optional is not None:
            given = positional[least] if len(positional) > least else extra
            value = spec.optional[1] if given is None else self.literal(spec, given)
        return Term(fname, args, window=window, value=value, column=col)

    def window(self, spec: OpSpec, node: ast.expr) -> int:
        where = f"the window d of {spec.name}"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            raise self.fail(node, f"{where} must be positive")
        if not isinstance(node, ast.Constant):
            raise self.fail(node, f"{where} must be a whole-number literal, not an expression")
        if isinstance(node.value, bool) or not isinstance(node.value, int):
            raise self.fail(node, f"{where} must be a whole number, got {node.value!r}")
        if node.value < spec.min_window:
            raise self.fail(node, f"{where} must be at least {spec.min_window}, got {node.value}")
        if node.value > MAX_WINDOW:
            raise self.fail(node, f"{where} must be at most {MAX_WINDOW}, got {node.value}")
        return node.value

    def literal(self, spec: OpSpec, node: ast.expr) -> float:
        assert spec.optional is not None
        sign = 1.0
        inner = node
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            sign, inner = -1.0, node.operand
        if not isinstance(inner, ast.Constant):
            raise self.fail(node, f"{spec.optional[0]} of {spec.name} must be a number literal")
        return sign * self.number(inner)


def _sig(name: str) -> str:
    return OPERATORS[name].signature()


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_DESCRIBE: Final[dict[type[ast.AST], str]] = {
    ast.Compare: "a comparison",
    ast.BoolOp: "'and'/'or'",
    ast.IfExp: "'if ... else'",
    ast.Attribute: "an attribute",
    ast.Subscript: "indexing",
    ast.Lambda: "lambda",
    ast.Tuple: "a tuple",
    ast.List: "a list",
    ast.Dict: "a dict",
    ast.Set: "a set",
    ast.JoinedStr: "a string",
    ast.NamedExpr: "':='",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.GeneratorExp: "a generator",
    ast.ListComp: "a comprehension",
    ast.Starred: "unpacking (*)",
}


def _describe(node: ast.AST) -> str:
    return _DESCRIBE.get(type(node), type(node).__name__)
