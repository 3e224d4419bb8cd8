"""The local AWS's HTTP(S) server: moto's WSGI application under gunicorn.

werkzeug's development server (moto's default) sometimes drops a kept-alive connection after
answering; the AWS provider then repeats a request that had succeeded, and a non-idempotent one
(CreateFunction) fails with "already exists" on every retry, so an apply hangs and the next one
does not converge. gunicorn speaks TLS and keeps connections as the SDKs expect.

One worker with threads: moto's state lives in one process. A worker that dies takes the server
down with it (child_exit), rather than gunicorn replacing it with an empty one that would answer
as if nothing had been created. The endpoint runtime and the background control plane run in the
worker (post_worker_init) and stop with it (worker_exit), so every process they started is stopped.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

THREADS = 32  # Terraform applies with parallelism 10, plus the CLI, the control plane, traffic


class LocalAwsServer(BaseApplication):
    def __init__(self, make_app: Callable[[], Any], host: str, port: int, *, cert: str | None,
                 key: str | None, on_start: Callable[[], None], on_stop: Callable[[], None]):
        self.make_app, self.on_start, self.on_stop = make_app, on_start, on_stop
        self.options: dict[str, Any] = {
            "bind": [f"{host}:{port}"], "workers": 1, "threads": THREADS,
            "worker_class": f"{__name__}.{GracefulThreadWorker.__name__}",
            "timeout": 120, "graceful_timeout": 25, "keepalive": 75,
            "accesslog": "-", "errorlog": "-", "loglevel": "info",
            # S3 metadata keys may contain underscores; moto's own server keeps such headers too.
            "header_map": "dangerous",
            "control_socket_disable": True,
            "post_worker_init": lambda worker: self.on_start(),
            "worker_exit": lambda server, worker: self.on_stop(),
            "child_exit": _stop_with_the_worker,
        }
        if cert and key:
            self.options.update(certfile=cert, keyfile=key)
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        return self.make_app()


class GracefulThreadWorker(ThreadWorker):
    """gthread, but a shutdown does not wait out the grace for idle kept-alive connections (an
    SDK client keeps its pool open): requests in flight finish, idle connections close at once."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        for conn in self.keepalived_conns:
            conn.timeout = 0


def _stop_with_the_worker(server: Any, worker: Any) -> None:
    # In the master: whatever ended the worker (a crash, a timeout, the shutdown itself), the
    # server ends too. During a shutdown the signal is one more TERM, which changes nothing.
    os.kill(os.getpid(), signal.SIGTERM)
