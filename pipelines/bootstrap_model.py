"""The model an endpoint starts with, before the first trained model is approved.

Terraform creates the endpoint with the project stack, so it needs a model that exists before any
pipeline has run. This one is a real, servable scikit-learn model with the project's input
columns that knows nothing: it answers every request with the same score (0.5 for a classifier,
0 for a regressor), so the endpoint comes up healthy, its alarms stay quiet, and the deploy handler
replaces it with the first approved model through a guarded blue/green update.

Built at synth time, byte for byte reproducible (same inputs -> same artifact -> no diff on plan).
"""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

from pipelines.bundle import STEPS_DIR, reproducible_tarball

MODEL_FILE = "model.joblib"
META_FILE = "model_meta.json"


def bootstrap_artifact(schema_path: Path, target: str, task: str) -> bytes:
    """model.tar.gz with model.joblib, model_meta.json and code/inference.py (as train.py lays out)."""
    import numpy as np
    from sklearn.dummy import DummyClassifier, DummyRegressor

    schema = json.loads(schema_path.read_text())
    features = [name for name in schema["columns"] if name != target]
    x = np.zeros((2, len(features)))
    if task == "classification":
        # Two rows, one of each class: predict_proba answers 0.5 for everything.
        model = DummyClassifier(strategy="prior").fit(x, [0, 1])
        classes = [0, 1]
    else:
        model = DummyRegressor(strategy="constant", constant=0.0).fit(x, [0.0, 0.0])
        classes = []
    meta = {
        "features": features, "categorical_features": [], "target": target, "task": task,
        "algorithm": "bootstrap", "hyperparameters": {}, "seed": 0, "classes": classes,
    }
    buffer = io.BytesIO()
    # joblib.dump of a small estimator is a plain pickle; protocol fixed for stable bytes.
    pickle.dump(model, buffer, protocol=4)
    return reproducible_tarball({
        MODEL_FILE: buffer.getvalue(),
        META_FILE: (json.dumps(meta, sort_keys=True, indent=2) + "\n").encode(),
        "code/inference.py": (STEPS_DIR / "inference.py").read_bytes(),
    })
