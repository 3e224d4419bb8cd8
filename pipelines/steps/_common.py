"""Shared plumbing of the step scripts: failure reporting, logging, reading inputs, writing JSON.

The step scripts run unchanged in a SageMaker container and on a laptop, so this module imports
only the standard library (and pandas when it reads a CSV), and every path comes from the caller.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import pandas as pd

STEP = Path(sys.argv[0]).stem or "step"
DEFAULT_OUTPUT_DIR = "/opt/ml/output"
PROJECT_FILE = "project.json"


class StepFailure(Exception):
    """A failure with a reason meant for a person: written to the failure file, no traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors become step failures (a reason in the failure file, exit 1)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise StepFailure(f"invalid arguments: {message}")


def argument_parser(doc: str | None) -> ArgumentParser:
    """The step's parser, described by the first line of its module docstring."""
    return ArgumentParser(description=doc.strip().splitlines()[0] if doc else None)


def log(message: str) -> None:
    # stdout may be captured by a caller that parses it; progress belongs on stderr.
    print(f"[{STEP}] {message}", file=sys.stderr, flush=True)


def _failure_files() -> list[Path]:
    output_dir = Path(os.environ.get("SM_OUTPUT_DIR", DEFAULT_OUTPUT_DIR))
    # Training jobs surface `failure` as FailureReason; Processing jobs surface `message` as
    # ExitMessage. Writing both keeps the reason visible whichever job type ran the script.
    return [output_dir / "failure", output_dir / "message"]


def fail(reason: str) -> NoReturn:
    """Record `reason` where SageMaker shows it, print it, exit 1."""
    for path in _failure_files():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(reason + "\n", encoding="utf-8")
        except OSError:
            pass  # not writable (a laptop without /opt/ml): stderr and the exit code still tell
    print(f"[{STEP}] error: {reason}", file=sys.stderr, flush=True)
    sys.exit(1)


def run(main: Callable[[], None]) -> NoReturn:
    """Run a step's main: exit 0 on success, 1 with a failure file on any error."""
    try:
        main()
    except StepFailure as exc:
        fail(str(exc))
    except Exception as exc:
        # A bug rather than bad input: keep the traceback for whoever debugs it.
        traceback.print_exc()
        fail(f"unexpected error: {type(exc).__name__}: {exc}")
    sys.exit(0)


def ensure_dir(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StepFailure(f"cannot create directory {path}: {exc.strerror or exc}") from exc
    return path


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StepFailure(f"{what} not found: {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise StepFailure(f"{what} is not readable JSON ({path}): {exc}") from exc


def read_project(config_dir: str | Path) -> dict[str, Any]:
    """The project config (`Project.model_dump(mode="json")`) from `config_dir/project.json`."""
    project = read_json(Path(config_dir) / PROJECT_FILE, "project config")
    if not isinstance(project, dict) or "task" not in project or "dataset" not in project:
        raise StepFailure(f"{Path(config_dir) / PROJECT_FILE} is not a project config")
    return project


def single_csv(directory: str | Path) -> Path:
    """The one CSV file under `directory` (any name, any depth: S3 prefixes keep sub-folders)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise StepFailure(f"input directory not found: {directory}")
    found = sorted(p for p in directory.rglob("*.csv") if p.is_file())
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(directory)) for p in found) or "none"
        raise StepFailure(f"expected exactly one CSV file in {directory}, found {len(found)}: {names}")
    return found[0]


def read_csv(source: str | Path, **kwargs: Any) -> pd.DataFrame:
    """A CSV file, or the one CSV in a folder, as a DataFrame."""
    import pandas as pd  # here, not at the top: register.py needs none of it

    path = Path(source)
    if path.is_dir() or not path.exists():
        path = single_csv(path)
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise StepFailure(f"cannot read CSV {path}: {exc}") from exc


def dumps(data: Any) -> str:
    # Sorted keys and no NaN (invalid JSON): the same inputs give byte-identical files.
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    ensure_dir(path.parent)
    path.write_text(dumps(data), encoding="utf-8")
    return path
