"""Stopping a child process the way SageMaker and Lambda stop theirs: SIGTERM, then SIGKILL after
a grace, by its pid (never by name)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process(proc: subprocess.Popen, grace_s: float) -> None:
    """`proc` was started in a session of its own (start_new_session): after the grace its whole
    process group is killed, so no worker it forked (gunicorn's) outlives it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            kill_group(proc.pid)
            proc.wait()
    if proc.returncode is not None and proc.returncode < 0:
        # The leader died of a signal (killed, crashed): what it forked may still run. The group
        # id stays reserved while any member lives, so this names only them.
        kill_group(proc.pid)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
