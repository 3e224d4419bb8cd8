"""`serve`: the inference image's command (SageMaker starts the container as `<image> serve`).

The model is loaded once, before gunicorn forks its workers (preload): a broken artifact stops the
container with one line naming what is wrong instead of workers crashing in a loop, and /ping is
healthy as soon as the port is open. SIGTERM (SageMaker's stop) lets each worker finish the
request it is answering, then exits 0; the grace stays under the 30 s after which SageMaker kills.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from .app import ModelApp
from .handler import ModelLoadError, load
from .settings import ServerSettings, SettingsError

GRACEFUL_STOP_S = 25


class _Gunicorn(BaseApplication):
    def __init__(self, application: ModelApp, options: dict[str, Any]):
        self.application, self.options = application, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> ModelApp:
        return self.application


def gunicorn_options(settings: ServerSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": [settings.bind],
        "workers": settings.workers,
        "worker_class": "sync",
        "timeout": settings.timeout_s,
        "graceful_timeout": GRACEFUL_STOP_S,
        "preload_app": True,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "model-server",
        # gunicorn 26's control socket (in $HOME) is for people at a shell, not for a container.
        "control_socket_disable": True,
        # Behind SageMaker's front end the container sees few, short connections.
        "keepalive": 2,
    }
    if Path("/dev/shm").is_dir():  # worker heartbeats; a container's /tmp may be a slow overlay
        options["worker_tmp_dir"] = "/dev/shm"
    return options


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["serve"]):
        print(f"usage: serve (got {' '.join(args)!r}): SageMaker starts the container as `<image> serve`",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ServerSettings.from_env()
        application = ModelApp(load(settings), settings.faults)
    except (SettingsError, ModelLoadError) as exc:
        print(f"model server: {exc}", file=sys.stderr)
        return 1
    if settings.faults.active:
        logging.getLogger("model_server").warning("fault injection is on: %s", settings.faults.describe())
    # gunicorn's own argument parser must not see ours.
    sys.argv = [sys.argv[0]]
    _Gunicorn(application, gunicorn_options(settings)).run()
    return 0
