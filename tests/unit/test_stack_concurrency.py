"""How many stacks of an environment run at once (mlops/deploy.py): plans together, applies one by one."""

from __future__ import annotations

import threading
import time

import pytest

from mlops.deploy import APPLY_WORKERS, PLAN_WORKERS, Deployer


def test_project_stacks_run_at_once_and_keep_their_order():
    # A barrier of two only opens when two works run at the same time.
    barrier = threading.Barrier(2, timeout=10)

    def work(n: int, name: str) -> str:
        barrier.wait()
        return f"{n}:{name}"

    assert Deployer._together(["a", "b"], work, first=2, workers=PLAN_WORKERS) == ["2:a", "3:b"]


def test_one_stack_failing_still_lets_the_others_finish_before_raising():
    finished: list[str] = []

    def work(n: int, name: str) -> str:
        if name == "bad":
            raise RuntimeError("bad: terraform apply failed")
        time.sleep(0.2)
        finished.append(name)
        return name

    with pytest.raises(RuntimeError, match="bad: terraform apply failed"):
        Deployer._together(["bad", "good", "fine"], work, workers=3)
    assert sorted(finished) == ["fine", "good"]


def test_no_more_than_the_cap_run_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    def work(n: int, name: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return name

    names = [f"p{i}" for i in range(PLAN_WORKERS + 3)]
    assert Deployer._together(names, work, workers=PLAN_WORKERS) == names
    assert peak[0] <= PLAN_WORKERS
    # Applies and destroys: one stack at a time.
    running[0] = peak[0] = 0
    assert Deployer._together(names, work) == names
    assert peak[0] == APPLY_WORKERS == 1
