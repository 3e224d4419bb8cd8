"""CloudWatch metric math, the part the platform's alarms use, for the local AWS.

moto's GetMetricData answers an expression query only when the expression is a bare query id, so
an alarm on `100*MAX([FILL(errors_5xx,0),FILL(model_errors,0)])/invocations`, or the latency
alarm's `IF(latency_n>=20,latency_p95,...)/FILL(baseline_p95,...)`, could never be evaluated
locally. local_aws/moto_server.py answers expression queries with `evaluate` instead.

Supported, with CloudWatch's meaning:
- numbers, query ids, + - * / and unary minus, parentheses;
- [a, b, ...] with MAX, MIN, SUM, AVG: one series, the function across the series per timestamp;
  MAX(m) of a single series: one number over the whole range;
- FILL(m, value): m with every timestamp of the request that m lacks set to value;
- ABS(m);
- comparisons (== != < <= > >=, 1 or 0 per timestamp; between two series a timestamp only one
  of them has compares with 0, a series against a number keeps the series' timestamps) and
  AND / && above OR / || (the guide states no precedence: this is C's and most languages');
- IF(condition, trueValue[, falseValue]), per timestamp of the condition: trueValue where it is
  non-zero (0 where trueValue is a series lacking the timestamp), falseValue where it is zero, and
  no datapoint where it is zero and falseValue is omitted or lacks the timestamp (the CloudWatch
  User Guide, "Using IF expressions").
Series combine on the timestamps they share; a division by zero gives no datapoint.
Anything else is refused with the expression and the position of what was not understood.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Series = dict[Any, float]  # timestamp -> value
Value = Series | float | list[Series | float]

_TOKEN = re.compile(
    r"\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|<=|>=|&&|\|\||.))")
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}
# Upper case only, as a token's text is matched as written: "and" could be a query id.
_AND, _OR = ("AND", "&&"), ("OR", "||")
_TESTS: dict[str, Callable[[float, float], bool]] = {
    **_COMPARISONS,
    **dict.fromkeys(_AND, lambda a, b: bool(a) and bool(b)),
    **dict.fromkeys(_OR, lambda a, b: bool(a) or bool(b)),
}
_SINGLE_OPS = "+-*/()[],<>"
_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "MAX": max,
    "MIN": min,
    "SUM": sum,
    "AVG": lambda values: sum(values) / len(values),
}


class MetricMathError(ValueError):
    pass


@dataclass(frozen=True)
class _Token:
    kind: str  # number, name, op, end
    text: str
    at: int


def _tokens(expression: str) -> list[_Token]:
    found, position = [], 0
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if match is None or match.end() == position:  # only trailing blanks are left
            break
        number, name, op = match.groups()
        at = match.start(match.lastindex or 0)
        if number is not None:
            found.append(_Token("number", number, at))
        elif name is not None:
            found.append(_Token("name", name, at))
        elif op is not None:
            if len(op) == 1 and op not in _SINGLE_OPS:
                raise MetricMathError(f"{expression!r}: unexpected {op!r} at position {at}")
            found.append(_Token("op", op, at))
        position = match.end()
    found.append(_Token("end", "", len(expression)))
    return found


class _Parser:
    def __init__(self, expression: str, series: Mapping[str, Series], timestamps: list[Any]):
        self.expression, self.series, self.timestamps = expression, series, timestamps
        self.tokens, self.i = _tokens(expression), 0

    def fail(self, what: str) -> MetricMathError:
        token = self.tokens[self.i]
        return MetricMathError(f"{self.expression!r}: {what} at position {token.at}")

    def take(self, text: str | None = None) -> _Token:
        token = self.tokens[self.i]
        if text is not None and token.text != text:
            raise self.fail(f"expected {text!r}, found {token.text or 'the end'!r}")
        self.i += 1
        return token

    def peek(self) -> str:
        return self.tokens[self.i].text

    def parse(self) -> Value:
        value = self.logical()
        if self.tokens[self.i].kind != "end":
            raise self.fail(f"unexpected {self.peek()!r}")
        return value

    def _left_to_right(self, operators: Iterable[str], operand: Callable[[], Value],
                       combine: Callable[[Value, Value, str], Value]) -> Value:
        value = operand()
        while self.peek() in operators:
            op = self.take().text
            value = combine(value, operand(), op)
        return value

    def logical(self) -> Value:
        return self._left_to_right(_OR, self.conjunction, _compare)

    def conjunction(self) -> Value:
        return self._left_to_right(_AND, self.comparison, _compare)

    def comparison(self) -> Value:
        return self._left_to_right(_COMPARISONS, self.sum, _compare)

    def sum(self) -> Value:
        return self._left_to_right(("+", "-"), self.product, _combine)

    def product(self) -> Value:
        return self._left_to_right(("*", "/"), self.unary, _combine)

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return _combine(0.0, self.unary(), "-")
        return self.primary()

    def primary(self) -> Value:
        token = self.tokens[self.i]
        if token.kind == "number":
            self.take()
            return float(token.text)
        if token.text == "(":
            self.take()
            value = self.logical()
            self.take(")")
            return value
        if token.text == "[":
            self.take()
            items = [self.logical()]
            while self.peek() == ",":
                self.take()
                items.append(self.logical())
            self.take("]")
            return items  # type: ignore[return-value]
        if token.kind == "name":
            self.take()
            if self.peek() == "(":
                return self.call(token)
            if token.text not in self.series:
                raise self.fail(f"unknown query id {token.text!r}")
            return dict(self.series[token.text])
        raise self.fail(f"unexpected {token.text or 'end'!r}")

    def call(self, function: _Token) -> Value:
        self.take("(")
        args = [self.logical()]
        while self.peek() == ",":
            self.take()
            args.append(self.logical())
        self.take(")")
        name = function.text.upper()
        if name == "IF" and len(args) in (2, 3) and not any(isinstance(a, list) for a in args):
            return _if(*args)  # type: ignore[arg-type]
        if name in _AGGREGATES and len(args) == 1:
            return _aggregate(_AGGREGATES[name], args[0])
        if name == "FILL" and len(args) == 2 and isinstance(args[1], float):
            return _fill(args[0], args[1], self.timestamps)
        if name == "ABS" and len(args) == 1:
            return _map(args[0], abs)
        raise MetricMathError(
            f"{self.expression!r}: {function.text}() with {len(args)} argument(s) is not supported "
            f"locally (position {function.at})"
        )


def _map(value: Value, fn: Callable[[float], float]) -> Value:
    if isinstance(value, dict):
        return {t: fn(v) for t, v in value.items()}
    if isinstance(value, list):
        return [_map(v, fn) for v in value]  # type: ignore[misc]
    return fn(value)


def _fill(value: Value, filler: float, timestamps: list[Any]) -> Value:
    if not isinstance(value, dict):
        raise MetricMathError("FILL() needs a time series as its first argument")
    return {t: value.get(t, filler) for t in timestamps}


def _aggregate(fn: Callable[[list[float]], float], value: Value) -> Value:
    if isinstance(value, dict):  # one series -> one number over the range
        return fn(list(value.values())) if value else float("nan")
    if not isinstance(value, list):
        return value
    series = [v for v in value if isinstance(v, dict)]
    scalars = [v for v in value if isinstance(v, float)]
    if not series:
        return fn(scalars)
    stamps = sorted({t for s in series for t in s})
    return {t: fn([s[t] for s in series if t in s] + scalars) for t in stamps}


def _apply(a: float, b: float, op: str) -> float | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return None if b == 0 else a / b


def _compare(a: Value, b: Value, op: str) -> Value:
    """A comparison or logical operator: 1.0 or 0.0, per timestamp when a series is involved;
    between two series every timestamp of either counts, the other's missing value as 0."""
    return _pairwise(a, b, op, lambda x, y: float(_TESTS[op](x, y)), missing=0.0)


def _if(condition: Series | float, true: Series | float, false: Series | float | None = None) -> Value:
    if not isinstance(condition, dict):  # IF(S, TS, TS): one branch, whole
        chosen = true if condition else false
        return {} if chosen is None else chosen
    out: Series = {}
    for t, c in condition.items():
        if c:
            out[t] = true.get(t, 0.0) if isinstance(true, dict) else true
        elif isinstance(false, dict):
            if t in false:
                out[t] = false[t]
        elif false is not None:
            out[t] = false
    return out


def _combine(a: Value, b: Value, op: str) -> Value:
    """Arithmetic: between two series on the timestamps they share."""
    return _pairwise(a, b, op, lambda x, y: _apply(x, y, op))


def _pairwise(a: Value, b: Value, op: str, fn: Callable[[float, float], float | None],
              missing: float | None = None) -> Value:
    """fn per timestamp (a None result drops it); two series meet on their shared timestamps, or
    with `missing` on every timestamp of either, the absent value read as `missing`."""
    if isinstance(a, list) or isinstance(b, list):
        raise MetricMathError(f"a [list] cannot be an operand of {op!r}: aggregate it first")
    if isinstance(a, dict) and isinstance(b, dict):
        stamps = [t for t in a if t in b] if missing is None else sorted({*a, *b})
        pairs = ((t, fn(a.get(t, missing), b.get(t, missing))) for t in stamps)  # type: ignore[arg-type]
    elif isinstance(a, dict):
        pairs = ((t, fn(v, b)) for t, v in a.items())  # type: ignore[arg-type]
    elif isinstance(b, dict):
        pairs = ((t, fn(a, v)) for t, v in b.items())
    else:
        result = fn(a, b)
        return float("nan") if result is None else result
    return {t: v for t, v in pairs if v is not None}


def evaluate(expression: str, series: Mapping[str, Series]) -> Series | float:
    """The value of `expression` over query results `series` (id -> {timestamp: value})."""
    timestamps = sorted({t for s in series.values() for t in s})
    value = _Parser(expression, series, timestamps).parse()
    if isinstance(value, list):
        raise MetricMathError(f"{expression!r}: a [list] is not a result; aggregate it (MAX, SUM, ...)")
    return value


def evaluate_results(expression: str, results: Iterable[dict[str, Any]]) -> tuple[list[float], list[Any]]:
    """`evaluate` on moto's GetMetricData results (dicts with id, values, timestamps); returns
    (values, timestamps) as moto's own expression parser does. A constant result (no series
    involved) is reported at every timestamp of the request."""
    series: dict[str, Series] = {
        r["id"]: {t: float(v) for t, v in zip(r["timestamps"], r["values"], strict=True) if v is not None}
        for r in results
    }
    value = evaluate(expression, series)
    if not isinstance(value, dict):
        stamps = sorted({t for s in series.values() for t in s})
        value = {t: value for t in stamps}
    stamps = sorted(value)
    return [value[t] for t in stamps], stamps
