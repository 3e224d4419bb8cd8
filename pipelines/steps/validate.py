"""Validate step: check the raw dataset against its JSON schema with pandera, collecting every failure.

    python3 validate.py --data DIR --schema DIR --output DIR

DIR of --data holds one CSV, DIR of --schema holds schema.json (the format of
pipelines/schemas/breast_cancer.json). Writes OUTPUT/validation_report.json whether or not the data
passes; exits 1 with a reason naming each failing check when it does not.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

# pandera warns about optional typing extras and pandas deprecations on import and per validation;
# none of it concerns this step, and the step's stderr is read by people.
warnings.filterwarnings("ignore", module="pandera")
warnings.filterwarnings("ignore", message="Using typeguard")

import pandera.pandas as pa  # noqa: E402  (after the warning filters above)
from _common import StepFailure, argument_parser, ensure_dir, log, read_csv, read_json, run, write_json  # noqa: E402

SCHEMA_FILE = "schema.json"
REPORT_FILE = "validation_report.json"
MAX_EXAMPLES = 5
# pandera's frame-level check names, reported before the per-column checks.
MISSING, UNEXPECTED, MIN_ROWS = "column_in_dataframe", "column_in_schema", "min_rows"
NULL_FRACTION = "max_null_fraction"
PANDERA_DTYPES: dict[str, Any] = {"float": "float64", "int": pd.Int64Dtype(), "category": str}
DTYPE_PROBLEM = {"float": "non-numeric", "int": "non-integer", "category": "non-text"}


@dataclass(frozen=True)
class Failure:
    column: str | None
    check: str
    count: int
    examples: list[str]


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--data", default="/opt/ml/processing/input/data", help="folder with one CSV")
    parser.add_argument("--schema", default="/opt/ml/processing/input/schema", help="folder with schema.json")
    parser.add_argument("--output", default="/opt/ml/processing/output", help="report folder")
    return parser.parse_args()


def read_schema(schema_dir: str | Path) -> dict[str, Any]:
    schema = read_json(Path(schema_dir) / SCHEMA_FILE, "validation schema")
    columns = schema.get("columns") if isinstance(schema, dict) else None
    if not isinstance(columns, dict) or not columns:
        raise StepFailure(f"{SCHEMA_FILE}: 'columns' must be a non-empty mapping of name -> rules")
    for name, rules in columns.items():
        if rules.get("dtype") not in PANDERA_DTYPES:
            raise StepFailure(
                f"{SCHEMA_FILE}: column '{name}': dtype must be one of {sorted(PANDERA_DTYPES)}, "
                f"got {rules.get('dtype')!r}"
            )
    return schema


def read_data(data_dir: str | Path, columns: dict[str, dict[str, Any]]) -> pd.DataFrame:
    # Categories are labels: read them as text so "01" stays "01" and 1 vs "1" cannot drift.
    text_columns = {name: str for name, rules in columns.items() if rules["dtype"] == "category"}
    return normalize(read_csv(data_dir, dtype=text_columns), columns)


def normalize(frame: pd.DataFrame, columns: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Lossless widening only (never parses text): integers are valid floats, and an integer column
    with nulls reads as float, so integral floats become pandas' nullable Int64."""
    frame = frame.copy()
    for name, rules in columns.items():
        if name not in frame.columns:
            continue
        series = frame[name]
        if rules["dtype"] == "float" and pd.api.types.is_integer_dtype(series):
            frame[name] = series.astype("float64")
        elif rules["dtype"] == "int" and is_number(series):
            values = series.dropna()
            if (values == values.round()).all():
                frame[name] = series.astype("Int64")
    return frame


def is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def null_fraction_check(limit: float) -> pa.Check:
    # ignore_na=False: pandera drops nulls before a check by default, which would hide them all.
    return pa.Check(
        lambda series: bool(series.isna().mean() <= limit),
        name=NULL_FRACTION,
        ignore_na=False,
    )


def value_checks(rules: dict[str, Any]) -> list[pa.Check]:
    checks = []
    low, high = rules.get("min"), rules.get("max")
    if low is not None and high is not None:
        checks.append(pa.Check.in_range(low, high))
    elif low is not None:
        checks.append(pa.Check.ge(low))
    elif high is not None:
        checks.append(pa.Check.le(high))
    if rules.get("allowed") is not None:
        checks.append(pa.Check.isin(rules["allowed"]))
    return checks


def build_schema(schema: dict[str, Any]) -> pa.DataFrameSchema:
    """The pandera schema: exact dtypes (no coercion), ranges, allowed values, null fractions."""
    min_rows = int(schema.get("min_rows", 0))
    columns = {
        name: pa.Column(
            PANDERA_DTYPES[rules["dtype"]],
            [*value_checks(rules), null_fraction_check(float(rules.get("max_null_fraction", 0.0)))],
            nullable=True,  # the null-fraction check decides, with a readable message
            required=True,
            coerce=False,  # a string in a numeric column must fail, not be parsed
        )
        for name, rules in schema["columns"].items()
    }
    return pa.DataFrameSchema(
        columns,
        strict=bool(schema.get("strict", False)),
        coerce=False,
        checks=[pa.Check(lambda df: len(df) >= min_rows, name=MIN_ROWS)],
    )


def collect_failures(frame: pd.DataFrame, schema: dict[str, Any]) -> list[Failure]:
    """Every failure at once (lazy validation), one entry per (column, check)."""
    expected = {name: rules["dtype"] for name, rules in schema["columns"].items()}
    try:
        build_schema(schema).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return summarize(exc.failure_cases, frame, expected)
    return []


def summarize(cases: pd.DataFrame, frame: pd.DataFrame, expected: dict[str, str]) -> list[Failure]:
    """pandera's failure cases as one Failure per (column, check)."""
    groups = relevant(cases).groupby(["column", "check"], dropna=False, sort=False)
    return [failure(column, str(check), group, frame, expected) for (column, check), group in groups]


def relevant(cases: pd.DataFrame) -> pd.DataFrame:
    cases = cases.copy()
    # Frame-level column checks name the column in failure_case, not in `column`.
    frame_level = cases["check"].isin([MISSING, UNEXPECTED])
    cases.loc[frame_level, "column"] = cases.loc[frame_level, "failure_case"]
    # Range/allowed-value checks on a column of the wrong type only repeat the dtype failure
    # (pandera reports the TypeError they raise), so that column keeps its dtype and null checks.
    is_dtype = cases["check"].astype(str).str.startswith("dtype(")
    mistyped = cases["column"].isin(set(cases.loc[is_dtype, "column"]))
    return cases[~mistyped | is_dtype | (cases["check"] == NULL_FRACTION)]


def failure(
    column: Any, check: str, cases: pd.DataFrame, frame: pd.DataFrame, expected: dict[str, str]
) -> Failure:
    column = None if pd.isna(column) else str(column)
    if check in (NULL_FRACTION, MIN_ROWS):
        # Series/frame-level checks fail once with `False`: count the rows at fault instead.
        count = int(frame[column].isna().sum()) if check == NULL_FRACTION else len(frame)
        return Failure(column, check, count, [])
    values = list(cases["failure_case"])
    if check.startswith("dtype("):
        # pandera's failure case may be the dtype's name; the offending values say more.
        values = mistyped_values(frame[column], expected[column]) or values
    examples = list(dict.fromkeys(str(v) for v in values))[:MAX_EXAMPLES]
    return Failure(column, check, len(values), examples)


def mistyped_values(series: pd.Series, dtype: str) -> list[Any]:
    """The non-null values of `series` that are not of the schema's `dtype`."""
    values = series.dropna()
    if dtype == "category":
        return [v for v in values if not isinstance(v, str)]
    numbers = pd.to_numeric(values.astype(str), errors="coerce")
    bad = numbers.isna()
    if dtype == "int":
        bad |= numbers != numbers.round()
    return list(values[bad])


def ordered(failures: Iterable[Failure], schema: dict[str, Any]) -> list[Failure]:
    """Frame-level problems first, then columns in schema order, so the reason reads top-down."""
    position = {name: i for i, name in enumerate(schema["columns"])}
    frame_checks = {MISSING: 0, UNEXPECTED: 1, MIN_ROWS: 2}

    def key(failure: Failure) -> tuple[int, int, str, str]:
        rank = frame_checks.get(failure.check, 3)
        return rank, position.get(failure.column or "", len(position)), failure.column or "", failure.check

    return sorted(failures, key=key)


def describe(failure: Failure, schema: dict[str, Any], frame: pd.DataFrame) -> str:
    """One failure in words: what is wrong, with which column, with examples."""
    column, check = failure.column, failure.check
    rules = schema["columns"].get(column, {})
    examples = ", ".join(repr(e) for e in failure.examples)
    if check == MISSING:
        return f"column '{column}' missing"
    if check == UNEXPECTED:
        return f"column '{column}' is not in the schema (strict)"
    if check == MIN_ROWS:
        return f"{len(frame)} rows < min_rows {schema.get('min_rows')}"
    if check == NULL_FRACTION:
        fraction = float(frame[column].isna().mean())
        return (
            f"column '{column}' null fraction {fraction:.2f} > {float(rules.get('max_null_fraction', 0)):.2f}"
        )
    if check.startswith("dtype("):
        return f"column '{column}' has {DTYPE_PROBLEM[rules['dtype']]} values (e.g. {examples})"
    if check.startswith(("in_range", "greater_than", "less_than")):
        bounds = f"[{rules.get('min', '-inf')}, {rules.get('max', 'inf')}]"
        return f"column '{column}' has {failure.count} values outside {bounds} (e.g. {examples})"
    if check.startswith("isin"):
        return f"column '{column}' has {failure.count} values not in {rules.get('allowed')} (e.g. {examples})"
    return f"column '{column}' failed {check} ({failure.count} cases, e.g. {examples})"


def report(frame: pd.DataFrame, failures: list[Failure]) -> dict[str, Any]:
    return {
        "status": "failed" if failures else "passed",
        "n_rows": len(frame),
        "n_columns": len(frame.columns),
        "checks": [
            {"column": f.column, "check": f.check, "failure_cases": f.count, "examples": f.examples}
            for f in failures
        ],
        "null_fractions": {str(c): round(float(frame[c].isna().mean()), 6) for c in frame.columns},
    }


def main() -> None:
    args = parse_args()
    ensure_dir(args.output)
    schema = read_schema(args.schema)
    frame = read_data(args.data, schema["columns"])
    failures = ordered(collect_failures(frame, schema), schema)
    path = write_json(Path(args.output) / REPORT_FILE, report(frame, failures))
    if failures:
        reasons = "; ".join(describe(f, schema, frame) for f in failures)
        raise StepFailure(f"validation failed: {reasons}")
    log(f"passed: {len(frame)} rows, {len(frame.columns)} columns; report {path}")


if __name__ == "__main__":
    run(main)
