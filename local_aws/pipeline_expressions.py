"""The expression language of SageMaker pipeline definitions, evaluated outside SageMaker.

A definition refers to run-time values with `{"Get": "Parameters.X"}`, `{"Get": "Execution.X"}`,
`{"Get": "Steps.S.<property path>"}`, `{"Std:Join": ...}` and `{"Std:JsonGet": ...}`, and a
Condition step compares such values. This module resolves them against what a run has produced so
far; it is pure (property files are read through a callback), so it is tested without AWS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_PATH_PART = re.compile(r"([A-Za-z0-9_]+)(?:\[(?:'([^']*)'|(\d+))\])?")


class ExpressionError(ValueError):
    """A definition refers to something the run does not have (names the reference)."""


@dataclass
class RunContext:
    parameters: dict[str, Any]
    execution: dict[str, Any]
    # step name -> its Describe*-shaped properties (as SageMaker would report them)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    # step name -> property file name -> (output name, path inside the output)
    property_files: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    # reads the JSON of an S3 object (the property file) given its URI
    read_json: Callable[[str], Any] | None = None


def property_path(properties: Mapping[str, Any], path: str, where: str) -> Any:
    """`ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri` against a Describe response.

    `Outputs['name']` selects the list item whose *Name key equals `name`, as SageMaker does."""
    value: Any = properties
    for part in path.split("."):
        match = _PATH_PART.fullmatch(part)
        if match is None:
            raise ExpressionError(f"{where}: cannot read property path '{path}'")
        key, name, index = match.groups()
        if not isinstance(value, Mapping) or key not in value:
            raise ExpressionError(f"{where}: no property '{key}' (in '{path}')")
        value = value[key]
        if name is not None:
            value = _by_name(value, name, where, path)
        elif index is not None:
            value = value[int(index)]
    return value


def _by_name(items: Any, name: str, where: str, path: str) -> Any:
    if isinstance(items, Mapping):
        if name in items:
            return items[name]
    else:
        for item in items:
            if any(k.endswith("Name") and v == name for k, v in item.items()):
                return item
    raise ExpressionError(f"{where}: no item named '{name}' (in '{path}')")


def json_path(document: Any, path: str, where: str) -> Any:
    """The dotted/indexed JSON path subset JsonGet uses: `metrics.accuracy`, `a.b[0].c`."""
    value = document
    for part in path.split("."):
        match = _PATH_PART.fullmatch(part)
        if match is None or not isinstance(value, Mapping) or match.group(1) not in value:
            raise ExpressionError(f"{where}: the property file has no '{path}'")
        value = value[match.group(1)]
        if match.group(3) is not None:
            value = value[int(match.group(3))]
    return value


def resolve(value: Any, ctx: RunContext, where: str = "definition") -> Any:
    """Replace every expression in `value` (recursively) by its value in this run."""
    if isinstance(value, list):
        return [resolve(v, ctx, where) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return _get(value["Get"], ctx, where)
    if set(value) == {"Std:Join"}:
        spec = value["Std:Join"]
        return spec.get("On", "").join(str(resolve(v, ctx, where)) for v in spec["Values"])
    if set(value) == {"Std:JsonGet"}:
        return _json_get(value["Std:JsonGet"], ctx, where)
    return {k: resolve(v, ctx, where) for k, v in value.items()}


def _get(reference: str, ctx: RunContext, where: str) -> Any:
    scope, _, rest = reference.partition(".")
    if scope == "Parameters":
        if rest not in ctx.parameters:
            raise ExpressionError(f"{where}: unknown pipeline parameter '{rest}'")
        return ctx.parameters[rest]
    if scope == "Execution":
        if rest not in ctx.execution:
            raise ExpressionError(f"{where}: unknown execution variable '{rest}'")
        return ctx.execution[rest]
    if scope == "Steps":
        step, _, path = rest.partition(".")
        if step not in ctx.steps:
            raise ExpressionError(f"{where}: step '{step}' has not run (referenced as {reference})")
        if path.startswith("PropertyFiles."):
            return ("PropertyFile", step, path.removeprefix("PropertyFiles."))
        return property_path(ctx.steps[step], path, where)
    raise ExpressionError(f"{where}: cannot resolve '{reference}'")


def _json_get(spec: Mapping[str, Any], ctx: RunContext, where: str) -> Any:
    ref = resolve(spec["PropertyFile"], ctx, where)
    if not (isinstance(ref, tuple) and ref[0] == "PropertyFile"):
        raise ExpressionError(f"{where}: JsonGet needs a property file, got {ref!r}")
    _, step, name = ref
    try:
        output_name, file_path = ctx.property_files[step][name]
    except KeyError:
        raise ExpressionError(f"{where}: step '{step}' declares no property file '{name}'") from None
    uri = property_path(
        ctx.steps[step], f"ProcessingOutputConfig.Outputs['{output_name}'].S3Output.S3Uri", where
    )
    if ctx.read_json is None:
        raise ExpressionError(f"{where}: no reader for property files")
    document = ctx.read_json(uri.rstrip("/") + "/" + file_path)
    return json_path(document, spec["Path"], where)


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def evaluate_condition(condition: Mapping[str, Any], ctx: RunContext, where: str) -> bool:
    kind = condition["Type"]
    if kind in _COMPARISONS:
        left = resolve(condition["LeftValue"], ctx, where)
        right = resolve(condition["RightValue"], ctx, where)
        try:
            return _COMPARISONS[kind](left, right)
        except TypeError as exc:
            raise ExpressionError(f"{where}: cannot compare {left!r} with {right!r}") from exc
    if kind == "Not":
        return not evaluate_condition(condition["Condition"], ctx, where)
    if kind == "Or":
        return any(evaluate_condition(c, ctx, where) for c in condition["Conditions"])
    if kind == "In":
        value = resolve(condition["QueryValue"], ctx, where)
        return value in [resolve(v, ctx, where) for v in condition["Values"]]
    raise ExpressionError(f"{where}: condition type '{kind}' is not supported locally")


def references(value: Any) -> set[str]:
    """Names of the steps an expression tree reads from (its implicit dependencies)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        get = value.get("Get")
        if isinstance(get, str) and get.startswith("Steps."):
            found.add(get.split(".")[1])
        for v in value.values():
            found |= references(v)
    return found


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
