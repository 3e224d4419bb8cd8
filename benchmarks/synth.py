"""Synthesis cost against its floor: the provider-binding import.

Baseline (measured in this run): a fresh process that only imports the cdktf AWS binding.
Subject: a fresh process that imports it and synthesizes every environment's stacks (platform
and bootstrap stacks: the foundation the 1.3 target was set for).
Target: subject / baseline <= 1.3, i.e. synthesizing all environments adds at most 30 % to the
import that any synth must pay once. Runs are interleaved so machine load hits both alike.
Also reported, without a target: the same with every project stack, whose pipeline definitions
need the sagemaker SDK (its import, a few seconds, is paid once per process as well).

Usage: python benchmarks/synth.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.3

IMPORT_ONLY = """
import json, time
t0 = time.perf_counter()
import stacks.binding
print(json.dumps({"import_s": time.perf_counter() - t0}))
"""

SYNTH_ALL = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import stacks.binding
t1 = time.perf_counter()
from stacks.app import synth
from stacks.config import load_environments
out = Path(sys.argv[1])
root = Path(sys.argv[2])
projects = None
if sys.argv[3] == "with-projects":
    from stacks.project_config import load_projects
    projects = load_projects(root)
infos = synth(load_environments(root), out / "cdktf.out", out / "state", projects)
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "total_s": t2 - t0, "stacks": len(infos)}))
"""


def run(code: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    baseline, subject, full, stacks, all_stacks = [], [], [], 0, 0
    for n in range(1, args.rounds + 1):
        baseline.append(run(IMPORT_ONLY)["import_s"])
        with tempfile.TemporaryDirectory() as tmp:
            result = run(SYNTH_ALL, tmp, str(ROOT), "platform-only")
        subject.append(result["total_s"])
        stacks = result["stacks"]
        with tempfile.TemporaryDirectory() as tmp:
            result = run(SYNTH_ALL, tmp, str(ROOT), "with-projects")
        full.append(result["total_s"])
        all_stacks = result["stacks"]
        print(f"round {n}: import alone {baseline[-1]:.2f} s, "
              f"import + synth of {stacks} stacks {subject[-1]:.2f} s, "
              f"with projects ({all_stacks} stacks) {full[-1]:.2f} s", file=sys.stderr)
    base, total, with_projects = (statistics.median(x) for x in (baseline, subject, full))
    ratio = total / base
    print(f"baseline (binding import alone, median of {args.rounds}): {base:.2f} s")
    print(f"synth all environments in one process ({stacks} stacks, median): {total:.2f} s")
    print(f"with every project stack ({all_stacks} stacks, median): {with_projects:.2f} s "
          f"(ratio {with_projects / base:.2f}, no target)")
    print(f"synth_over_import_ratio={ratio:.2f} target<={TARGET} "
          f"{'MET' if ratio <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
