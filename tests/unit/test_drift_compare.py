"""`mlops drift compare` logic: CSV and Parquet in, scipy-equal statistics out, clear bad-input errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, ks_2samp

from mlops.drift_compare import (
    DriftInputError,
    add_compare_arguments,
    compare_files,
    render_table,
    run_compare,
)

TOL = 1e-12


@pytest.fixture
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(42)
    n = 1500
    ref = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "clicks": rng.integers(0, 8, n),
            "plan": rng.choice(["free", "pro", "team"], n),
            "region": rng.integers(1, 4, n),
        }
    )
    cur = pd.DataFrame(
        {
            "age": rng.normal(46, 10, n),
            "clicks": rng.integers(0, 8, n),
            "plan": rng.choice(["free", "pro", "team", "enterprise"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "region": rng.integers(1, 4, n),
        }
    )
    ref.loc[::50, "age"] = np.nan
    return ref, cur


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlops drift compare")
    add_compare_arguments(parser)
    return parser


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_compare_files_equals_scipy(tmp_path: Path, frames, suffix: str) -> None:
    ref, cur = frames
    ref_path, cur_path = tmp_path / f"ref{suffix}", tmp_path / f"cur{suffix}"
    if suffix == ".csv":
        ref.to_csv(ref_path, index=False)
        cur.to_csv(cur_path, index=False)
    else:
        ref.to_parquet(ref_path)
        cur.to_parquet(cur_path)
    result = compare_files(ref_path, cur_path, ["region"])
    features = result["features"]
    assert list(features) == ["age", "clicks", "plan", "region"]
    for name in ("age", "clicks"):
        assert {"ks", "p_value", "psi", "js", "drifted"} <= set(features[name]) and "chi2" not in features[
            name
        ]
        expected = ks_2samp(ref[name].dropna(), cur[name])
        assert abs(features[name]["ks"] - expected.statistic) <= TOL
        assert abs(features[name]["p_value"] - expected.pvalue) <= TOL
    for name in ("plan", "region"):
        assert {"chi2", "p_value", "psi", "js", "drifted"} <= set(features[name]) and "ks" not in features[
            name
        ]
        table = pd.crosstab(
            pd.concat([ref[name], cur[name]]).astype(str), np.repeat([0, 1], [len(ref), len(cur)])
        ).T.to_numpy()
        expected = chi2_contingency(table)
        assert abs(features[name]["chi2"] - expected.statistic) <= TOL * expected.statistic
        assert abs(features[name]["p_value"] - expected.pvalue) <= TOL
    assert features["age"]["drifted"] and features["plan"]["drifted"] and not features["clicks"]["drifted"]
    assert features["plan"]["unseen_categories"] == ["enterprise"]
    assert result["notes"] == ["treated as categorical (not numeric in both files): plan"]
    assert result["summary"]["n_drifted"] == 2 and result["summary"]["n_ref_rows"] == len(ref)
    json.dumps(result, allow_nan=False)
    table = render_table(result)
    assert "DRIFTED" in table and "plan" in table and "note: treated as categorical" in table


def test_run_compare_json_and_html(tmp_path: Path, frames, capsys) -> None:
    ref, cur = frames
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.to_parquet(tmp_path / "cur.parquet")
    html = tmp_path / "report.html"
    args = _parser().parse_args(
        [
            str(tmp_path / "ref.csv"),
            str(tmp_path / "cur.parquet"),
            "--categorical",
            "region, ",
            "--json",
            "--html",
            str(html),
        ]
    )
    assert run_compare(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"features", "summary"}
    assert set(out["features"]["age"]) >= {"ks", "p_value", "psi", "js", "drifted"}
    assert set(out["features"]["region"]) >= {"chi2", "p_value", "psi", "js", "drifted"}
    assert html.read_text().startswith("<!DOCTYPE html>")
    args = _parser().parse_args([str(tmp_path / "ref.csv"), str(tmp_path / "cur.parquet")])
    assert run_compare(args) == 0
    assert "feature" in capsys.readouterr().out


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("ref_name", "ref_bytes", "message"),
    [
        ("missing.csv", None, "no such file"),
        ("empty.csv", b"", "file is empty"),
        ("header.csv", b"age,clicks,plan,region\n", "no data rows"),
        ("broken.parquet", b"PAR1 this is not parquet", "cannot read as parquet"),
        ("data.json", b"{}", "unsupported file type"),
        ("ragged.csv", b"age,clicks\n1,2\n3,4,5,6\n", "cannot parse as CSV"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(
    tmp_path: Path, frames, capsys, ref_name, ref_bytes, message
) -> None:
    ref_path = tmp_path / ref_name
    if ref_bytes is not None:
        _write(ref_path, ref_bytes)
    cur_path = tmp_path / "cur.csv"
    frames[1].to_csv(cur_path, index=False)
    with pytest.raises(DriftInputError, match=message) as info:
        compare_files(ref_path, cur_path, [])
    assert str(ref_path) in str(info.value) and "\n" not in str(info.value)
    assert run_compare(_parser().parse_args([str(ref_path), str(cur_path)])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_column_mismatch_and_unknown_categorical(tmp_path: Path, frames) -> None:
    ref, cur = frames
    ref.to_csv(tmp_path / "ref.csv", index=False)
    cur.drop(columns=["clicks"]).assign(extra=1).to_csv(tmp_path / "cur.csv", index=False)
    with pytest.raises(DriftInputError, match=r"only in .*ref\.csv: clicks; only in .*cur\.csv: extra"):
        compare_files(tmp_path / "ref.csv", tmp_path / "cur.csv", [])
    cur.to_csv(tmp_path / "cur.csv", index=False)
    with pytest.raises(DriftInputError, match=r"--categorical: unknown column.*colour"):
        compare_files(tmp_path / "ref.csv", tmp_path / "cur.csv", ["colour"])


def test_reference_column_without_values_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "ref.csv").write_text("a,b\n,x\n,y\n")
    (tmp_path / "cur.csv").write_text("a,b\n1,x\n2,y\n")
    with pytest.raises(DriftInputError, match=r"ref\.csv: column 'a' has no finite values"):
        compare_files(tmp_path / "ref.csv", tmp_path / "cur.csv", [])
