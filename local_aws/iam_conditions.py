"""IAM's evaluation of a statement's Condition element against a request context, as AWS does it.

Pure functions (no moto): `condition_holds(condition, context)` answers whether a statement's
`Condition` block holds for a request whose context is `{key: [values]}`. The wiring into moto's
enforcement is local_aws/iam_enforcement.py; a statement whose condition does not hold does not
apply, whatever its effect (an Allow allows nothing, a Deny denies nothing).

The rules, from the IAM User Guide:
- "IAM JSON policy elements: Condition operators"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
  a key absent from the request context makes the condition false, except that a negated operator
  (StringNotEquals, StringNotLike, ArnNotLike, NumericNotEquals, NotIpAddress, ...) is then true,
  an `...IfExists` operator is then true, and `Null` tests the absence itself ("true": the key is
  absent). StringLike's only wildcards are `*` (any run of characters, `/` included) and `?` (one
  character), case-sensitive; everything else (`[`, `]`, ...) is literal. ArnEquals and ArnLike
  are the same test: each of the ARN's six colon-delimited parts matched separately, with `*` and
  `?`. Bool compares "true"/"false"; Numeric* and Date* compare numbers and ISO 8601 dates (or
  epoch seconds).
- "IAM JSON policy elements: Condition" (reference_policies_elements_condition.html): several
  values for one key are OR-ed (for a negated operator: the value must match none of them), several
  keys in one operator and several operators in one Condition are AND-ed; condition key names are
  case-insensitive, values case-sensitive (but for the IgnoreCase operators).
- "Multivalued context keys" (reference_policies_condition-single-vs-multi-valued-context-keys.html):
  `ForAnyValue:` holds when at least one of the request's values matches (false when the key is
  absent); `ForAllValues:` when every one does (true when the key is absent or has no value).
  Without a set operator a multivalued key is undefined by AWS ("multivalued context keys require a
  condition set operator"); here it is read as ForAnyValue (ForAllValues for a negated operator).
- "IAM policy elements: Variables and tags" (reference_policies_variables.html): `${key}` in a
  string or ARN condition's value is the request's value of that key, `${key, 'default'}` falls
  back to the default, `${*}` `${?}` `${$}` are the literal characters. A variable that cannot be
  resolved makes the statement invalid ("this might cause the entire statement to be invalid"):
  here the condition does not hold, so the statement does not apply.

An operator IAM does not know is a policy AWS refuses at PutRolePolicy (MalformedPolicyDocument);
moto stores it anyway, so here it raises ConditionError naming it instead of being skipped.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["ConditionError", "arn_like", "condition_holds", "context_of", "string_like"]

Context = Mapping[str, Sequence[str]]
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_DEFAULT = re.compile(r"^\s*([^,]+?)\s*,\s*'([^']*)'\s*$")
_LITERALS = {"*": "*", "?": "?", "$": "$"}


class ConditionError(ValueError):
    """A condition AWS would have refused when the policy was written (unknown operator, bad value)."""


class _Unresolved(Exception):
    """A policy variable with no value in the request context and no default."""


def context_of(values: Mapping[str, str | Sequence[str] | None]) -> dict[str, list[str]]:
    """A request context from key -> value(s): keys lowercased (condition keys are
    case-insensitive), every value a string, absent ones (None) left out."""
    context: dict[str, list[str]] = {}
    for key, value in values.items():
        if value is None:
            continue
        items = [value] if isinstance(value, str) else list(value)
        context.setdefault(key.lower(), []).extend(_text(v) for v in items)
    return context


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


# --- policy variables --------------------------------------------------------------------------
def _tokens(template: str, context: Context) -> list[tuple[str, bool]]:
    """The value as (text, is_pattern) pieces: literal text of the policy (where `*`/`?` are
    wildcards) and what variables resolved to (always literal)."""
    pieces: list[tuple[str, bool]] = []
    end = 0
    for match in _VARIABLE.finditer(template):
        pieces.append((template[end:match.start()], True))
        name = match.group(1).strip()
        if name in _LITERALS:
            pieces.append((_LITERALS[name], False))
        else:
            default = _DEFAULT.match(name)
            key, fallback = (default.group(1), default.group(2)) if default else (name, None)
            values = context.get(key.lower())
            if values:
                # Only single-valued keys may be variables; a multivalued one is unresolvable.
                if len(values) != 1:
                    raise _Unresolved(key)
                pieces.append((values[0], False))
            elif fallback is not None:
                pieces.append((fallback, False))
            else:
                raise _Unresolved(key)
        end = match.end()
    pieces.append((template[end:], True))
    return pieces


def _resolved(template: str, context: Context) -> str:
    return "".join(text for text, _ in _tokens(template, context))


@functools.lru_cache(maxsize=1024)
def _wildcard_regex(pieces: tuple[tuple[str, bool], ...]) -> re.Pattern[str]:
    parts = []
    for text, is_pattern in pieces:
        if not is_pattern:
            parts.append(re.escape(text))
            continue
        for char in text:
            parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


# --- matchers: (policy value, request value, context) -> match --------------------------------
def string_like(pattern: str, value: str, context: Context | None = None) -> bool:
    """IAM's StringLike: `*` any run (including empty and `/`), `?` one character, the rest
    literal and case-sensitive."""
    return _wildcard_regex(tuple(_tokens(pattern, context or {}))).fullmatch(value) is not None


def arn_like(pattern: str, value: str, context: Context | None = None) -> bool:
    """IAM's ArnLike/ArnEquals: the six colon-delimited parts (arn:partition:service:region:
    account:resource, the resource keeping its own colons) matched one by one with `*` and `?`."""
    wanted = _resolved(pattern, context or {}).split(":", 5)
    actual = value.split(":", 5)
    if len(wanted) != 6 or len(actual) != 6:
        return False
    return all(_wildcard_regex(((w, True),)).fullmatch(a) is not None
               for w, a in zip(wanted, actual, strict=True))


def _string_equals(expected: str, value: str, context: Context) -> bool:
    return _resolved(expected, context) == value


def _string_equals_ignore_case(expected: str, value: str, context: Context) -> bool:
    return _resolved(expected, context).casefold() == value.casefold()


def _bool_equals(expected: str, value: str, context: Context) -> bool:
    if expected.lower() not in ("true", "false"):
        raise ConditionError(f"Bool takes true or false, not {expected!r}")
    return expected.lower() == value.lower()


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> datetime | None:
    number = _number(text)
    if number is not None:
        return datetime.fromtimestamp(number, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


Matcher = Callable[[str, str, Context], bool]


def _compare(parse: Callable[[str], Any], test: Callable[[Any, Any], bool], kind: str) -> Matcher:
    def match(expected: str, value: str, context: Context) -> bool:
        wanted = parse(expected)
        if wanted is None:
            raise ConditionError(f"{kind} condition value {expected!r} is not a {kind.lower()}")
        actual = parse(value)
        return actual is not None and test(actual, wanted)
    return match


def _ip_address(expected: str, value: str, context: Context) -> bool:
    try:
        network = ipaddress.ip_network(expected, strict=False)
    except ValueError:
        raise ConditionError(f"IpAddress condition value {expected!r} is not an address or CIDR") from None
    try:
        return ipaddress.ip_address(value) in network
    except ValueError:
        return False


def _binary_equals(expected: str, value: str, context: Context) -> bool:
    try:
        return base64.b64decode(expected, validate=True) == base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False


def _arn(expected: str, value: str, context: Context) -> bool:
    return arn_like(expected, value, context)


def _like(expected: str, value: str, context: Context) -> bool:
    return string_like(expected, value, context)


_NUMERIC = {"Equals": lambda a, b: a == b, "LessThan": lambda a, b: a < b,
            "LessThanEquals": lambda a, b: a <= b, "GreaterThan": lambda a, b: a > b,
            "GreaterThanEquals": lambda a, b: a >= b}
# Operator -> (matcher, negated).
OPERATORS: dict[str, tuple[Matcher, bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_like, False),
    "StringNotLike": (_like, True),
    "ArnEquals": (_arn, False),
    "ArnLike": (_arn, False),
    "ArnNotEquals": (_arn, True),
    "ArnNotLike": (_arn, True),
    "Bool": (_bool_equals, False),
    "BinaryEquals": (_binary_equals, False),
    "IpAddress": (_ip_address, False),
    "NotIpAddress": (_ip_address, True),
    **{f"Numeric{name}": (_compare(_number, test, "Numeric"), False) for name, test in _NUMERIC.items()},
    "NumericNotEquals": (_compare(_number, _NUMERIC["Equals"], "Numeric"), True),
    **{f"Date{name}": (_compare(_date, test, "Date"), False) for name, test in _NUMERIC.items()},
    "DateNotEquals": (_compare(_date, _NUMERIC["Equals"], "Date"), True),
}
_SET_OPERATORS = ("ForAnyValue:", "ForAllValues:")


def _operator(name: str) -> tuple[str | None, str, bool]:
    """`ForAllValues:StringLikeIfExists` -> ("ForAllValues:", "StringLike", True)."""
    qualifier = next((q for q in _SET_OPERATORS if name.startswith(q)), None)
    base = name[len(qualifier):] if qualifier else name
    if_exists = base.endswith("IfExists") and base != "IfExists"
    if if_exists:
        base = base[: -len("IfExists")]
    if base == "Null" and not (if_exists or qualifier):
        return None, base, False
    if base not in OPERATORS:
        raise ConditionError(f"unknown condition operator {name!r} (AWS refuses such a policy: "
                             "MalformedPolicyDocument)")
    return qualifier, base, if_exists


def _null_holds(expected: list[str], present: bool) -> bool:
    for value in expected:
        if value.lower() not in ("true", "false"):
            raise ConditionError(f"Null takes true or false, not {value!r}")
    return any((value.lower() == "true") != present for value in expected)


def _key_holds(operator: str, key: str, expected: Any, context: Context) -> bool:
    qualifier, base, if_exists = _operator(operator)
    policy_values = [_text(v) for v in (expected if isinstance(expected, list) else [expected])]
    values = context.get(key.lower())
    if base == "Null":
        return _null_holds(policy_values, bool(values))
    matcher, negated = OPERATORS[base]
    if not values:
        if if_exists or qualifier == "ForAllValues:":
            return True
        return negated and qualifier is None

    def matches(value: str) -> bool:
        return any(matcher(p, value, context) for p in policy_values)

    def fits(value: str) -> bool:
        return not matches(value) if negated else matches(value)

    if qualifier == "ForAllValues:" or (qualifier is None and negated):
        return all(fits(v) for v in values)
    return any(fits(v) for v in values)


def condition_holds(condition: Mapping[str, Mapping[str, Any]] | None, context: Context) -> bool:
    """Whether a statement's Condition block holds for the request context (keys lowercased:
    context_of). Every operator, and every key within one, must hold. Raises ConditionError for a
    block AWS would not have accepted."""
    if not condition:
        return True
    if not isinstance(condition, Mapping):
        raise ConditionError(f"a Condition must be an object, not {condition!r}")
    for operator, keys in condition.items():
        _operator(operator)  # every operator known, whatever the others answer
        if not isinstance(keys, Mapping):
            raise ConditionError(f"condition operator {operator!r} must map keys to values")
    try:
        for operator, keys in condition.items():
            for key, expected in keys.items():
                if not _key_holds(operator, key, expected, context):
                    return False
    except _Unresolved:
        return False
    return True
