"""Handler cold start against its floor: importing boto3, which every handler needs anyway.

Baseline (measured in this run): a fresh process that only imports boto3.
Subjects: a fresh process that imports one handler module (lambdas/<name>/handler.py, settings
parsed from placeholder environment variables, as at a Lambda cold start), for gate, deploy and
rollback (retrain is reported too); and one process importing all three.
Target: subject / baseline <= 2.5 for each handler. Times are the import statement's own
(perf_counter around it, interpreter start-up excluded), the median of interleaved rounds, so
machine load hits baseline and subjects alike.
Also checked in every subject process: none of cdktf, jsii, sagemaker, mlflow, pandas, sklearn,
numpy, scipy was imported, directly or through anything else; nor pydantic, which with the
Powertools Parser's models cost the handlers about 0.5x boto3 (they were at 2.2-2.6x with it,
1.4-1.7x without).

Usage: python benchmarks/handlers.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lambdas.shared.control.settings import dummy_environment  # noqa: E402 - after the path

TARGET = 2.5
FORBIDDEN = ("cdktf", "jsii", "sagemaker", "mlflow", "pandas", "sklearn", "numpy", "scipy", "pydantic")
SUBJECTS = {
    "boto3": ["boto3"],
    "gate": ["lambdas.gate.handler"],
    "deploy": ["lambdas.deploy.handler"],
    "rollback": ["lambdas.rollback.handler"],
    "retrain": ["lambdas.retrain.handler"],
    "gate+deploy+rollback": ["lambdas.gate.handler", "lambdas.deploy.handler", "lambdas.rollback.handler"],
}
TARGETED = ("gate", "deploy", "rollback")

PROBE = """
import importlib, json, sys, time
modules = sys.argv[1].split(",")
t0 = time.perf_counter()
for name in modules:
    importlib.import_module(name)
elapsed = time.perf_counter() - t0
forbidden = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
print(json.dumps({"import_s": elapsed, "forbidden": forbidden, "modules": len(sys.modules)}))
"""


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(dummy_environment(), AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=str(ROOT))
    return env


def run(modules: list[str], env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(modules), ",".join(FORBIDDEN)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"importing {modules} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    env = environment()
    for modules in SUBJECTS.values():  # warm-up: byte-compile and fill the page cache, not timed
        run(modules, env)
    times: dict[str, list[float]] = {name: [] for name in SUBJECTS}
    found: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, modules in SUBJECTS.items():  # interleaved: load drift hits every subject alike
            result = run(modules, env)
            times[name].append(result["import_s"])
            found[name] = result
    baseline = statistics.median(times["boto3"])
    print(f"import time, median of {args.rounds} interleaved fresh processes (target <= {TARGET}x boto3):")
    print(f"  {'subject':<22} {'median ms':>9} {'min ms':>7} {'ratio':>6} {'modules':>8}  forbidden")
    failures = []
    for name in SUBJECTS:
        median = statistics.median(times[name])
        ratio = median / baseline
        print(
            f"  {name:<22} {median * 1000:9.0f} {min(times[name]) * 1000:7.0f} {ratio:5.2f}x "
            f"{found[name]['modules']:8d}  {', '.join(found[name]['forbidden']) or 'none'}"
        )
        if name != "boto3" and found[name]["forbidden"]:
            failures.append(f"{name} imports {found[name]['forbidden']}")
        if name in TARGETED and ratio > TARGET:
            failures.append(f"{name}: {ratio:.2f}x boto3 exceeds {TARGET}x")
    print(json.dumps({name: round(statistics.median(t) * 1000, 1) for name, t in times.items()}))
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
