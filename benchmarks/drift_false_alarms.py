"""How often the drift alarms fire on windows with no drift at all: their false-alarm rates.

The reference is the demo project's, as the train step builds it (the features of the pipeline's
own train split). Each window draws its rows, with replacement, from that train split itself, so
nothing drifted; the drift engine compares it with the project's thresholds, and the two drift
alarms' conditions are counted: MaxPSI > drift.psi_threshold (feature-drift) and
DriftedFeatureShare >= drift.critical_feature_share (drift). PSI on decile bins has a sampling
floor of about (bins - 1) / rows, so small windows cry wolf: drift.min_rows (the engine's
DRIFT_MIN_ROWS: fewer rows publish the counts only) is chosen from these rates.

Usage: python benchmarks/drift_false_alarms.py [--windows N]
Last line: min_rows=R feature_drift_false_alarm_rate=X drift_false_alarm_rate=Y (target <= 0.01 each)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_RATE = 0.01


def false_alarm_rates(rows: int, windows: int, seed: int = 7) -> dict[str, float]:
    """The two drift alarms' firing rates over `windows` no-drift windows of `rows` rows."""
    from lambdas.shared.drift.engine import DriftConfig, compare
    from lambdas.shared.drift.reference import build_reference, prepare_reference
    from pipelines.dataset import breast_cancer_frame
    from stacks.project_config import load_project

    config = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    train = _train_split(config, breast_cancer_frame()).drop(columns=[config.dataset.target])
    columns = {name: train[name].to_numpy(dtype=float) for name in train.columns}
    prepared = prepare_reference(build_reference(columns))
    engine = DriftConfig(alpha=config.drift.p_value, min_psi=config.drift.psi_threshold, min_rows=1)
    rng = np.random.default_rng(seed)
    feature_drift = drift = 0
    for _ in range(windows):
        picked = rng.integers(0, len(train), rows)
        summary = compare(prepared, {n: v[picked] for n, v in columns.items()}, None, engine).summary
        feature_drift += summary.max_psi > config.drift.psi_threshold
        drift += summary.drifted_share >= config.drift.critical_feature_share
    return {"feature_drift": feature_drift / windows, "drift": drift / windows}


def _train_split(config: Any, frame: Any) -> Any:
    from mlops.traffic import _load_step

    return _load_step("preprocess").split(frame, config.model_dump(mode="json"))["train"]


def main() -> None:
    from stacks.project_config import load_project

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1000)
    args = parser.parse_args()
    config = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    print(f"{args.windows} no-drift windows per size; PSI threshold {config.drift.psi_threshold}, "
          f"drifted share {config.drift.critical_feature_share}, p-value {config.drift.p_value}")
    for rows in sorted({50, 100, 150, config.drift.min_rows, 300, 500}):
        rates = false_alarm_rates(rows, args.windows)
        mark = "  <- drift.min_rows" if rows == config.drift.min_rows else ""
        print(f"  {rows:4d} rows: feature-drift {rates['feature_drift']:.4f}, "
              f"drift {rates['drift']:.4f}{mark}")
    rates = false_alarm_rates(config.drift.min_rows, args.windows)
    print(f"min_rows={config.drift.min_rows} feature_drift_false_alarm_rate={rates['feature_drift']:.4f} "
          f"drift_false_alarm_rate={rates['drift']:.4f} (target <= {TARGET_RATE} each)")


if __name__ == "__main__":
    main()
