"""The model's own inference module (SAGEMAKER_PROGRAM in SAGEMAKER_SUBMIT_DIRECTORY), loaded
the way SageMaker's framework containers load it: its folder first on sys.path, then
model_fn(model_dir) once, and input_fn -> predict_fn -> output_fn for every request."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .settings import ServerSettings

FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")


class ModelLoadError(RuntimeError):
    """The artifact cannot be served; the message says what is missing."""


@dataclass(frozen=True)
class InferenceHandler:
    module: ModuleType
    model: Any
    # What the module raises for a request it cannot take. Artifacts trained before BadRequest
    # existed raise ValueError for those (and for nothing else their code path raises).
    bad_request: type[Exception]

    def __call__(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[str | bytes, str]:
        rows = self.module.input_fn(body, content_type)
        prediction = self.module.predict_fn(rows, self.model)
        return self.module.output_fn(prediction, accept)

    @staticmethod
    def status_of(error: Exception) -> int:
        status = getattr(error, "status", 400)
        return status if isinstance(status, int) and 400 <= status < 500 else 400


def load(settings: ServerSettings) -> InferenceHandler:
    path = settings.submit_dir / settings.program
    if not path.is_file():
        raise ModelLoadError(f"{path}: no inference module (SAGEMAKER_PROGRAM={settings.program}, "
                             f"SAGEMAKER_SUBMIT_DIRECTORY={settings.submit_dir}); is the model archive "
                             f"extracted to {settings.model_dir}?")
    sys.path.insert(0, str(settings.submit_dir))
    name = Path(settings.program).stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses in the module look it up by name
    spec.loader.exec_module(module)
    missing = [f for f in FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise ModelLoadError(f"{path}: defines no {', '.join(missing)}")
    try:
        model = module.model_fn(str(settings.model_dir))
    except Exception as exc:
        raise ModelLoadError(f"model_fn({settings.model_dir}) failed: {type(exc).__name__}: {exc}") from exc
    return InferenceHandler(module, model, getattr(module, "BadRequest", ValueError))
