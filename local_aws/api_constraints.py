"""What an AWS API refuses that botocore's client-side validation lets through, and moto accepts.

botocore checks a request's types, required members and minimums; the service then also checks
each member's `max` (a string's or list's length, a number's value), `pattern` (a Java regular
expression the whole value must match) and enum (the values it may take), as its service model
states them, and answers ValidationException naming every violation: `Value 'x' at
'processingJobName' failed to satisfy constraint: Member must satisfy regular expression
pattern: ...`. moto checks almost none of it,
so a request AWS refuses passes locally. Here the same constraints are read from botocore's own
copy of the service model, plus the rules the API reference states only in words
(`WORDED_RULES`: a job's VolumeKmsKeyId is a key id or key ARN, never an alias; `REQUEST_RULES`:
a versioned model package takes no Tags).

Used by the local AWS on every SageMaker API call (local_aws/moto_server.py) and on every job a
pipeline step would start (local_aws/pipeline_runner.py, whose requests never reach an API).
Patterns are Java regexes; the `regex` module reads their `\\p{L}`-style classes. The few that
neither reads (surrogate ranges) are skipped, not guessed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import regex
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters


def _no_alias(value: str) -> bool:
    return ":alias/" not in value and not value.startswith("alias/")


# (structure, member) -> (what the API reference says, a check of the value). Only where the
# reference says it: a transform job's VolumeKmsKeyId, for one, may be an alias.
WORDED_RULES: dict[tuple[str, str], tuple[str, Callable[[str], bool]]] = {
    (structure, "VolumeKmsKeyId"): ("the KMS key of a job's storage volume is a key id or key ARN, "
                                    "not an alias", _no_alias)
    for structure in ("ProcessingClusterConfig", "ResourceConfig", "HyperParameterTuningResourceConfig")
}


# (service, operation) -> rules between a request's members that the API reference states in words:
# (what it says, a check of the whole request).
REQUEST_RULES: dict[tuple[str, str], tuple[tuple[str, Callable[[dict[str, Any]], bool]], ...]] = {
    ("sagemaker", "CreateModelPackage"): (
        ("Tags cannot be supplied with ModelPackageGroupName: a versioned model package uses the "
         "tags of its model package group",
         lambda params: not (params.get("Tags") and params.get("ModelPackageGroupName"))),
    ),
}


@functools.cache
def service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


@functools.cache
def _pattern(text: str) -> Any:
    try:
        return regex.compile(text)
    except (regex.error, ValueError):
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _failed(value: Any, path: str, constraint: str) -> str:
    return f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: {constraint}"


def _violations(shape: Any, value: Any, path: str) -> Iterator[str]:
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                where = f"{path}.{_camel(name)}" if path else _camel(name)
                rule = WORDED_RULES.get((shape.name, name))
                if rule and isinstance(value[name], str) and not rule[1](value[name]):
                    yield _failed(value[name], where, rule[0])
                yield from _violations(member, value[name], where)
        return
    if kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            yield _failed(value, path, f"Member must have length less than or equal to {meta['max']}")
        for index, item in enumerate(value, start=1):
            yield from _violations(shape.member, item, f"{path}.{index}.member")
        return
    if kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            yield _failed(value, path, f"Map must have length less than or equal to {meta['max']}")
        for key, item in value.items():
            yield from _violations(shape.key, key, f"{path}.key")
            yield from _violations(shape.value, item, f"{path}.{key}")
        return
    if kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            yield _failed(value, path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        if "max" in meta and len(value) > meta["max"]:
            yield _failed(value, path, f"Member must have length less than or equal to {meta['max']}")
        compiled = _pattern(meta["pattern"]) if "pattern" in meta else None
        if compiled is not None and compiled.fullmatch(value) is None:
            yield _failed(value, path, f"Member must satisfy regular expression pattern: {meta['pattern']}")
        return
    if kind in ("integer", "long", "float", "double") and isinstance(value, int | float) \
            and not isinstance(value, bool) and "max" in meta and value > meta["max"]:
        yield _failed(value, path, f"Member must have value less than or equal to {meta['max']}")


def violations(service: str, operation: str, params: dict[str, Any]) -> list[str]:
    """Every constraint of `operation`'s input that `params` breaks, in AWS's words."""
    shape = service_model(service).operation_model(operation).input_shape
    return list(_violations(shape, params, "")) if shape is not None else []


def refusal(service: str, operation: str, params: dict[str, Any], *, typed: bool = True) -> str | None:
    """The ValidationException message AWS would answer `params` with; None if it would take
    them. `typed`: also botocore's own checks (requests that never went through a client)."""
    problems: list[str] = []
    if typed:
        try:
            validate_parameters(params, service_model(service).operation_model(operation).input_shape)
        except ParamValidationError as exc:
            problems += [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
    problems += violations(service, operation, params)
    problems += [said for said, holds in REQUEST_RULES.get((service, operation), ()) if not holds(params)]
    if not problems:
        return None
    count = len(problems)
    return f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems)
