"""Declarative checks that name every problem at once: handler settings read from environment
variables, JSON settings inside them, and the fields of incoming events.

Why not pydantic here: the Lambda handlers start cold in every new container, and importing
pydantic with the Powertools Parser's models costs about half an `import boto3`
(benchmarks/handlers.py measures it). These checks cost nothing to import and say as precisely
what is wrong and where.

A check takes a raw value (a string from the environment, or a decoded JSON value) and returns
the typed value, or raises ValueError saying what is wrong with it. It never says where: the
caller prefixes the variable, the JSON key or the event field.

A settings class is a frozen dataclass whose fields are `setting(source, check)`: `source` is the
environment variable (or the JSON key) the value comes from. `check_fields` checks a whole set of
values and returns every problem, so one message can name them all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, field, fields
from typing import Any

Check = Callable[[Any], Any]


def text(value: Any) -> str:
    """A non-blank string (an environment variable, a JSON string: never a number or a list)."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    result = value.strip()
    if not result:
        raise ValueError("must not be empty")
    return result


def string(value: Any) -> str:
    """Any JSON string, empty included."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {type(value).__name__}")
    return value


def bounded(max_length: int) -> Check:
    def check(value: Any) -> str:
        result = text(value)
        if len(result) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        return result

    return check


def matching(pattern: str, what: str) -> Check:
    """Text matching `pattern` as a whole; `what` names what it should be in the message."""
    compiled = re.compile(pattern)

    def check(value: Any) -> str:
        result = text(value)
        if not compiled.fullmatch(result):
            raise ValueError(f"not {what}: {result!r}")
        return result

    return check


# SageMaker's rule for endpoint (and model, endpoint config) names.
sagemaker_name = matching(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "a SageMaker endpoint name")


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(result):
        raise ValueError(f"not a finite number: {value!r}")
    return result


def at_least(minimum: float) -> Check:
    def check(value: Any) -> float:
        result = number(value)
        if result < minimum:
            raise ValueError(f"must be >= {minimum:g}, got {value!r}")
        return result

    return check


def positive(value: Any) -> float:
    result = number(value)
    if result <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return result


def open_fraction(value: Any) -> float:
    result = number(value)
    if not 0 < result < 1:
        raise ValueError(f"must lie strictly between 0 and 1, got {value!r}")
    return result


def whole(minimum: int = 0, maximum: int | None = None) -> Check:
    """A whole number in [minimum, maximum], from an int or its decimal text ("60")."""
    span = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not re.fullmatch(r"\s*\d+\s*", str(value)):
            raise ValueError(f"must be a whole number {span}, got {value!r}")
        result = int(value)
        if result < minimum or (maximum is not None and result > maximum):
            raise ValueError(f"must be a whole number {span}, got {value!r}")
        return result

    return check


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def optional(check: Check) -> Check:
    """None passes as None (JSON null: "this check is off"; an absent event field)."""

    def parse(value: Any) -> Any:
        return None if value is None else check(value)

    parse.allows_none = True  # type: ignore[attr-defined]
    return parse


def json_document(check: Check) -> Check:
    """A JSON document (text, as environment variables hold it) whose value passes `check`."""

    def parse(value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON ({exc})") from None
        return check(value)

    return parse


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a JSON object, got {type(value).__name__}")
    return value


def set_of(check: Check) -> Check:
    """A JSON list whose items each pass `check`, as a frozenset (duplicates collapse)."""

    def parse(value: Any) -> frozenset[Any]:
        if not isinstance(value, list):
            raise ValueError(f"must be a JSON list, got {type(value).__name__}")
        return frozenset(_each(check, enumerate(value)).values())

    return parse


def mapping_of(check: Check, *, min_items: int = 0) -> Check:
    """A JSON object of (non-empty) names to values each passing `check`."""

    def parse(value: Any) -> dict[str, Any]:
        items = json_object(value)
        if len(items) < min_items:
            raise ValueError(f"needs at least {min_items} entries")
        return _each(check, ((text(k), v) for k, v in items.items()))

    return parse


def _each(check: Check, items: Any) -> dict[Any, Any]:
    checked, problems = {}, []
    for key, item in items:
        try:
            checked[key] = check(item)
        except ValueError as exc:
            problems.append(f"[{key!r}]: {exc}" if isinstance(key, str) else f"[{key}]: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return checked


# ----------------------------------------------------------------------------- settings classes


def setting(source: str, check: Check, **kwargs: Any) -> Any:
    """A dataclass field read from `source` (an environment variable or a JSON key), checked by
    `check`. Pass `default=` for an optional one."""
    return field(metadata={"source": source, "check": check}, **kwargs)


def check_fields(cls: type, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`values` (field name -> raw value; None or absent = unset) checked and converted, and every
    problem as "SOURCE: what is wrong"."""
    checked: dict[str, Any] = {}
    problems: list[str] = []
    for f in fields(cls):
        source, value = f.metadata["source"], values.get(f.name)
        if value is None:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f"{source}: required")
            continue
        try:
            checked[f.name] = f.metadata["check"](value)
        except ValueError as exc:
            problems.append(f"{source}: {exc}")
    return checked, problems


def environ_values(cls: type, environ: Mapping[str, str]) -> dict[str, str]:
    """The set environment variables of `cls`'s fields, by field name (empty counts as unset)."""
    raw = {f.name: (environ.get(f.metadata["source"]) or "").strip() for f in fields(cls)}
    return {name: value for name, value in raw.items() if value}


def build(cls: type, values: Mapping[str, Any], problems: tuple[str, ...] = ()) -> Any:
    """An instance of `cls` from `values` (as `check_fields` takes them), or ValueError naming
    every problem: each field's, the caller's `problems`, then those between fields (the
    instance's `validate()`, if it has one, which only runs on fields that passed)."""
    checked, found = check_fields(cls, values)
    found += problems
    if not found:
        instance = cls(**checked)
        found = instance.validate() if hasattr(instance, "validate") else []
        if not found:
            return instance
    raise ValueError("; ".join(found))


def record(cls: type) -> Check:
    """A JSON object whose keys are `cls`'s field sources (no others), as an instance of `cls`."""
    known = {f.metadata["source"]: f.name for f in fields(cls)}

    def parse(value: Any) -> Any:
        data = json_object(value)
        unknown = tuple(f"{k}: unknown key" for k in sorted(set(data) - set(known)))
        return build(cls, {known[k]: v for k, v in data.items() if k in known}, unknown)

    return parse


def source_names(cls: type) -> list[str]:
    return [f.metadata["source"] for f in fields(cls)]


# ------------------------------------------------------------------------------------- events

_ABSENT = object()


def check_paths(data: Mapping[str, Any], checks: Mapping[str, Check]) -> list[str]:
    """Every problem of `data` against `checks` (dotted path -> check), as "path: what is wrong".
    An absent field is "required" unless its check is `optional(...)`."""
    problems = []
    for path, check in checks.items():
        value: Any = data
        for part in path.split("."):
            value = value.get(part, _ABSENT) if isinstance(value, Mapping) else _ABSENT
            if value is _ABSENT:
                break
        if value is _ABSENT:
            value = None
        if value is None and not getattr(check, "allows_none", False):
            problems.append(f"{path}: required")
            continue
        try:
            check(value)
        except ValueError as exc:
            problems.append(f"{path}: {exc}")
    return problems
