"""Who may import what (DESIGN.md): the code that runs in AWS never imports the CLI, the stacks or
the local AWS; the stacks never import the code that runs in AWS, nor numpy or scipy; only the CLI
and the tests import the local AWS. Read from the source (every import statement, at any depth),
so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS_IN_AWS = ("lambdas", "pipelines/steps", "pipelines/model_server")
RULES = {
    # folder: top-level packages it must not import
    **{folder: ("mlops", "stacks", "local_aws") for folder in RUNS_IN_AWS},
    "stacks": ("lambdas", "mlops", "local_aws", "numpy", "scipy"),
    "pipelines": ("mlops", "local_aws"),
    "local_aws": ("mlops",),
}


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in sorted(imported(path)):
            if name.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize("folder", sorted(RULES))
def test_folder_imports_only_what_it_may(folder):
    assert violations(folder, RULES[folder]) == []


def test_the_rules_catch_a_forbidden_import(tmp_path, monkeypatch):
    package = tmp_path / "lambdas" / "gate"
    package.mkdir(parents=True)
    (package / "handler.py").write_text("def handler(e, c):\n    from local_aws import lifecycle\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    assert violations("lambdas", RULES["lambdas"]) == ["lambdas/gate/handler.py imports local_aws"]


def test_the_light_handlers_load_no_numpy(tmp_path):
    """Only the drift handler ships numpy and scipy (a layer); the others, the quality check
    among them, run on the runtime's Python with Powertools alone: importing them loads neither."""
    import subprocess
    import sys

    code = ("import sys, os\n"
            "from lambdas.shared.control.settings import dummy_environment\n"
            "os.environ.update(dummy_environment())\n"
            "os.environ.update(TASK='classification', CAPTURE_S3_URI='s3://c/demo/', "
            "GROUND_TRUTH_S3_URI='s3://c/demo/ground-truth/', ARTIFACTS_BUCKET='artifacts')\n"
            "for name in ('gate', 'deploy', 'rollback', 'retrain', 'quality'):\n"
            "    __import__(f'lambdas.{name}.handler')\n"
            "print(sorted(m for m in ('numpy', 'scipy', 'pandas') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
