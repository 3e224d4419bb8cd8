"""The drift alarms do not cry wolf: on windows drawn from the reference itself (no drift), each
fires in at most 1% of windows at the project's drift.min_rows (benchmarks/drift_false_alarms.py
prints the rates over more windows and sizes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _benchmark():
    path = ROOT / "benchmarks" / "drift_false_alarms.py"
    spec = importlib.util.spec_from_file_location("drift_false_alarms", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_drift_alarm_fires_in_at_most_one_percent_of_healthy_windows():
    from stacks.project_config import load_project

    config = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    bench = _benchmark()
    rates = bench.false_alarm_rates(config.drift.min_rows, windows=400)
    print(f"false-alarm rates at {config.drift.min_rows} rows over 400 windows: {rates}")
    assert rates["feature_drift"] <= bench.TARGET_RATE and rates["drift"] <= bench.TARGET_RATE
    # And the floor is real: half the size cries wolf most of the time.
    assert bench.false_alarm_rates(config.drift.min_rows // 2, windows=100)["feature_drift"] > 0.2
