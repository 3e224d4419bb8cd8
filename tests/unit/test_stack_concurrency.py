"""The project stacks of an environment are applied and destroyed together (mlops/deploy.py)."""

from __future__ import annotations

import threading
import time

import pytest

from mlops.deploy import PROJECT_WORKERS, Deployer


def test_project_stacks_run_at_once_and_keep_their_order():
    # A barrier of two only opens when two works run at the same time.
    barrier = threading.Barrier(2, timeout=10)

    def work(n: int, name: str) -> str:
        barrier.wait()
        return f"{n}:{name}"

    assert Deployer._together(["a", "b"], work, first=2) == ["2:a", "3:b"]


def test_one_stack_failing_still_lets_the_others_finish_before_raising():
    finished: list[str] = []

    def work(n: int, name: str) -> str:
        if name == "bad":
            raise RuntimeError("bad: terraform apply failed")
        time.sleep(0.2)
        finished.append(name)
        return name

    with pytest.raises(RuntimeError, match="bad: terraform apply failed"):
        Deployer._together(["bad", "good", "fine"], work)
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

    names = [f"p{i}" for i in range(PROJECT_WORKERS + 3)]
    assert Deployer._together(names, work) == names
    assert peak[0] <= PROJECT_WORKERS
