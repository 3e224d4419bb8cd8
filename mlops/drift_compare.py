"""`mlops drift compare REF CUR`: drift between two local data files, with the Lambda's engine.

The files are CSV or Parquet (by suffix). The reference file plays the training data: it is
turned into a reference document in memory (every value kept, no subsampling) and compared with
the current file exactly as the drift monitor compares a capture window, so the numbers a person
sees here are the ones the alarm would have used.

Exit codes follow the CLI: 0 ok (drift or not), 2 bad input (missing, unreadable or empty file,
columns that differ, unknown --categorical names).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from lambdas.shared.drift import DriftConfig, DriftResult

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
NUMERIC_KEYS = ("ks", "p_value", "psi", "js", "drifted")
CATEGORICAL_KEYS = ("chi2", "p_value", "psi", "js", "drifted")


class DriftInputError(ValueError):
    """Bad input for `drift compare`; the message is one line naming the file and the problem."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame, or DriftInputError saying what is wrong with it."""
    import pandas as pd

    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DriftInputError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .parquet)")
    if not path.exists():
        raise DriftInputError(f"{path}: no such file")
    if not path.is_file():
        raise DriftInputError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise DriftInputError(f"{path}: file is empty")
    try:
        frame = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DriftInputError(f"{path}: file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DriftInputError(f"{path}: cannot parse as CSV: {_one_line(exc)}") from None
    except PermissionError:
        raise DriftInputError(f"{path}: permission denied") from None
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DriftInputError(f"{path}: cannot read as {kind}: {_one_line(exc)}") from None
    if frame.shape[1] == 0:
        raise DriftInputError(f"{path}: no columns")
    if frame.shape[0] == 0:
        raise DriftInputError(f"{path}: no data rows (header only)")
    return frame


def _is_numeric(series: pd.Series) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(series.dtype) and not is_bool_dtype(series.dtype)


def _categorical_values(series: pd.Series) -> Any:
    # object array with None for missing: category_key maps 1 / 1.0 / "1" alike, None -> missing
    return series.astype(object).where(series.notna(), None).to_numpy(dtype=object)


def _compare(
    reference: Path, current: Path, categorical: list[str], config: DriftConfig | None = None
) -> tuple[dict[str, Any], DriftResult]:
    # The engine (numpy, scipy) loads only when a comparison runs: every other `mlops` command
    # builds this parser too.
    import numpy as np

    from lambdas.shared.drift import build_reference, compare, prepare_reference
    from lambdas.shared.drift.report import feature_block, summary_block

    ref = read_table(reference)
    cur = read_table(current)
    only_ref = [c for c in ref.columns if c not in cur.columns]
    only_cur = [c for c in cur.columns if c not in ref.columns]
    if only_ref or only_cur:
        parts = []
        if only_ref:
            parts.append(f"only in {reference}: {', '.join(map(str, only_ref))}")
        if only_cur:
            parts.append(f"only in {current}: {', '.join(map(str, only_cur))}")
        raise DriftInputError("columns differ between the files; " + "; ".join(parts))
    columns = [str(c) for c in ref.columns]
    unknown = [c for c in categorical if c not in columns]
    if unknown:
        raise DriftInputError(
            f"--categorical: unknown column(s) {', '.join(unknown)} (columns: {', '.join(columns)})"
        )
    listed = set(categorical)
    implied = [c for c in columns if c not in listed and not (_is_numeric(ref[c]) and _is_numeric(cur[c]))]
    cat_cols = listed | set(implied)
    notes = []
    if implied:
        notes.append(f"treated as categorical (not numeric in both files): {', '.join(implied)}")

    def arrays(frame: pd.DataFrame) -> dict[str, Any]:
        return {
            c: _categorical_values(frame[c]) if c in cat_cols else frame[c].to_numpy(dtype=np.float64)
            for c in columns
        }

    try:
        doc = build_reference(arrays(ref), categorical=cat_cols, max_values=None, as_lists=False)
        prepared = prepare_reference(doc)
    except ValueError as exc:  # e.g. a column with no values at all
        raise DriftInputError(f"{reference}: {_one_line(exc)}") from None
    result = compare(prepared, arrays(cur), config=config)

    features: dict[str, Any] = {}
    for name, f in result.features.items():
        block = feature_block(f)
        block.pop("chi2" if f.kind == "numeric" else "ks")
        features[name] = block
    payload = {
        "reference": str(reference),
        "current": str(current),
        "features": features,
        "summary": summary_block(result.summary),
        "notes": notes,
    }
    return payload, result


def compare_files(reference: Path, current: Path, categorical: list[str]) -> dict[str, Any]:
    """Drift of `current` against `reference` (CSV or Parquet): {"features": {name: {...}},
    "summary": {...}, "notes": [...]}. Numeric features carry ks, p_value, psi, js, drifted;
    categorical ones chi2, p_value, psi, js, drifted (plus kind, p_adjusted, counts)."""
    return _compare(Path(reference), Path(current), list(categorical))[0]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3e}" if value != 0 and abs(value) < 1e-3 else f"{value:.4f}"
    return str(value)


def render_table(result: dict[str, Any]) -> str:
    """The human-readable form of a compare_files result."""
    header = ("feature", "kind", "statistic", "p-value", "p-adjusted", "PSI", "JS", "verdict")
    rows = [header]
    for name, f in result["features"].items():
        stat = f"KS {_fmt(f.get('ks'))}" if f["kind"] == "numeric" else f"chi2 {_fmt(f.get('chi2'))}"
        verdict = "DRIFTED" if f["drifted"] else ("no drift" if f["status"] == "ok" else "no data")
        rows.append(
            (
                name,
                f["kind"],
                stat,
                _fmt(f["p_value"]),
                _fmt(f["p_adjusted"]),
                _fmt(f["psi"]),
                _fmt(f["js"]),
                verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    s = result["summary"]
    lines += [
        "",
        f"rows: reference {s['n_ref_rows']}, current {s['n_cur_rows']}",
        f"drifted: {s['n_drifted']} of {s['n_tested']} features (share {_fmt(s['drifted_share'])}); "
        f"max PSI {_fmt(s['max_psi'])} ({s['max_psi_feature'] or '-'})",
        f"rule: BH-adjusted p < {s['alpha']} and PSI >= {s['min_psi']}",
    ]
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", type=Path, metavar="REF", help="reference data (.csv or .parquet)")
    parser.add_argument("current", type=Path, metavar="CUR", help="current data (.csv or .parquet)")
    parser.add_argument(
        "--categorical",
        default="",
        metavar="A,B",
        help="comma-separated categorical columns (non-numeric columns are categorical anyway)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--html", type=Path, metavar="PATH", help="also write a self-contained HTML report")
    parser.add_argument("--alpha", type=float, default=0.05, help="false discovery rate (default 0.05)")
    parser.add_argument("--min-psi", type=float, default=0.1, help="minimum PSI for a drift verdict (0.1)")


def run_compare(args: argparse.Namespace) -> int:
    from lambdas.shared.drift import DriftConfig
    from lambdas.shared.drift.report import render_html

    categorical = [c.strip() for c in (args.categorical or "").split(",") if c.strip()]
    try:
        config = DriftConfig(alpha=args.alpha, min_psi=args.min_psi)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        payload, result = _compare(args.reference, args.current, categorical, config)
    except DriftInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.html is not None:
        title = f"Drift: {args.current.name} vs {args.reference.name}"
        try:
            args.html.write_text(render_html(result, title=title), encoding="utf-8")
        except OSError as exc:
            print(f"error: {args.html}: cannot write the HTML report: {_one_line(exc)}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(render_table(payload))
    return 0
