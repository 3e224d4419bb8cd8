"""The local AWS runs by itself, like AWS: a thread of the server's worker ticks the local control
plane every second (alarm evaluation, service events, schedules, SQS -> Lambda delivery), so a
user's own script that only sends traffic sees the alarm fire and the rollback happen without
running any `mlops` command.

It pauses while a command steps the plane itself (control_plane.stepping: `mlops local loop`,
`pipeline run`, `drill`, tests), and ticks never overlap with a command's (a file lock). Its
functions' execution environments stop with it. Off when the local AWS starts with
MLOPS_LOCAL_BACKGROUND=false (LocalAws(background=False): tests that step the plane alone).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from local_aws.control_plane import LocalControlPlane, background_paused

log = logging.getLogger("local_aws.background")
INTERVAL_S = 1.0
RECORD_WAIT_S = 300.0


class BackgroundControlPlane:
    def __init__(self, state_dir: Path, interval_s: float = INTERVAL_S):
        self.state_dir, self.interval_s = state_dir, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="control-plane", daemon=True)
        self._plane: LocalControlPlane | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        record = own_record(self.state_dir, self._stop)
        if record is None:
            log.warning("background control plane: no server record for this server; not running")
            return
        self._plane = LocalControlPlane.for_server(record, self.state_dir,
                                                   report=lambda line: log.info("control plane: %s", line))
        while not self._stop.wait(self.interval_s):
            if background_paused(self.state_dir):
                continue
            try:
                self._plane.tick()
            except Exception:  # one bad tick (the server shutting down, a moto error) is not the last
                log.exception("background control plane: tick failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._plane is not None:
            self._plane.close()


def own_record(state_dir: Path, stop: threading.Event, wait_s: float = RECORD_WAIT_S):
    """This server's record (its address, its CA), once the process that started it has written
    it; None if it never does or `stop` is set first."""
    from local_aws.lifecycle import ServerRecord

    deadline = time.monotonic() + wait_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            record = ServerRecord(**json.loads((state_dir / "server.json").read_text()))
            if record.pid in (os.getpid(), os.getppid()):  # gunicorn: the master's pid
                return record
        except (OSError, ValueError, TypeError):
            pass
        stop.wait(0.5)
    return None
