"""The functions' Lambda layers: pinned by the lock, content-addressed, reproducible, never built by
synth, and the only way third-party code reaches a function."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from mlops.layers import _zip_wheels
from stacks import layers
from stacks.layers import POWERTOOLS, SCIENTIFIC, LayerNotBuilt, content_key, layers_for, requirements


def test_versions_come_from_the_lock_and_decide_the_cache_key():
    pins = layers.pinned_versions()
    assert requirements(POWERTOOLS) == [f"aws-lambda-powertools=={pins['aws-lambda-powertools']}"]
    assert requirements(SCIENTIFIC) == [f"numpy=={pins['numpy']}", f"scipy=={pins['scipy']}"]
    bumped = {**pins, "numpy": "0.0.1"}
    assert content_key(SCIENTIFIC, "x86_64", bumped) != content_key(SCIENTIFIC, "x86_64", pins)
    assert content_key(SCIENTIFIC, "arm64", pins) != content_key(SCIENTIFIC, "x86_64", pins)
    with pytest.raises(ValueError, match="numpy, scipy not pinned"):
        requirements(SCIENTIFIC, {"aws-lambda-powertools": "1"})


def test_each_handler_gets_what_it_imports():
    assert layers_for("drift") == (POWERTOOLS, SCIENTIFIC)
    for handler in ("gate", "deploy", "rollback", "retrain", "quality"):
        assert layers_for(handler) == (POWERTOOLS,)


def test_synth_never_builds_a_missing_layer_it_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_LAYER_CACHE", str(tmp_path))
    with pytest.raises(LayerNotBuilt, match=r"scientific Lambda layer \(x86_64\) is not built: run "
                                            r"`mlops layers build`"):
        layers.built_layer(SCIENTIFIC)


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_the_layer_zip_is_reproducible_and_keeps_packages_under_python(tmp_path):
    a = _wheel(tmp_path / "a-1-py3-none-any.whl",
               {"a/__init__.py": b"x = 1\n", "a-1.dist-info/METADATA": b"m"})
    b = _wheel(tmp_path / "b-1-py3-none-any.whl", {"b/core.py": b"y = 2\n"})
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    size = _zip_wheels([a, b], first)
    _zip_wheels([a, b], second)
    assert first.read_bytes() == second.read_bytes()
    assert size == len(b"x = 1\n") + 1 + len(b"y = 2\n")
    with zipfile.ZipFile(io.BytesIO(first.read_bytes())) as archive:
        assert archive.namelist() == ["python/a-1.dist-info/METADATA", "python/a/__init__.py",
                                      "python/b/core.py"]


def test_functions_run_only_the_projects_own_layers(synth_all):
    for stack_name in ("project-demo-dev", "project-demo-prod", "project-demo-local"):
        stack = synth_all.json(stack_name)
        versions = stack["resource"]["aws_lambda_layer_version"]
        assert {v["layer_name"].rsplit("-", 1)[-1] for v in versions.values()} == {"powertools", "scientific"}
        for version in versions.values():
            assert version["compatible_runtimes"] == [layers.RUNTIME]
        for function in stack["resource"]["aws_lambda_function"].values():
            assert function["runtime"] == layers.RUNTIME
            names = {ref.split(".")[1] for ref in function["layers"]}
            assert names <= set(versions), function["function_name"]
            wanted = {"powertools", "scientific"} if function["function_name"].endswith("-drift") else {
                "powertools"}
            assert {versions[n]["layer_name"].rsplit("-", 1)[-1] for n in names} == wanted
        assert "017000801446" not in json.dumps(stack)  # no public layer anywhere
