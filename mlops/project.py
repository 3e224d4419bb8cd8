"""Where a checkout keeps its configuration, synthesized stacks and local working state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stacks.config import Environment, load_environments
from stacks.project_config import ProjectConfig, load_projects

WORK_DIR = ".mlops"  # git-ignored: local state, the moto server record, Terraform CLI config


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """MLOPS_ROOT, else the nearest folder upwards holding cdktf.json and environments/."""
        if os.environ.get("MLOPS_ROOT"):
            return cls(Path(os.environ["MLOPS_ROOT"]).resolve())
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / "cdktf.json").is_file() and (folder / "environments").is_dir():
                return cls(folder)
        # Installed elsewhere but run from outside a checkout: fall back to this source tree.
        return cls(Path(__file__).resolve().parents[1])

    @property
    def outdir(self) -> Path:
        # The npm cdktf CLI passes its output folder in CDKTF_OUTDIR.
        return Path(os.environ.get("CDKTF_OUTDIR") or self.root / "cdktf.out").resolve()

    @property
    def work_dir(self) -> Path:
        return self.root / WORK_DIR

    @property
    def state_dir(self) -> Path:
        return self.work_dir / "state"

    @property
    def local_dir(self) -> Path:
        return self.work_dir / "local"

    def environments(self, names: list[str] | None = None) -> dict[str, Environment]:
        return load_environments(self.root, names)

    def environment(self, name: str, among: dict[str, Environment] | None = None) -> Environment:
        """One environment (from `among`, all of them loaded, when given); a name without a file
        is a ConfigError that lists the known ones."""
        if among is not None and name in among:
            return among[name]
        return load_environments(self.root, [name])[name]

    def projects(self) -> dict[str, dict[str, ProjectConfig]]:
        """environments/projects/*.yaml: project name -> environment -> its settings there."""
        return load_projects(self.root)

    def project(self, name: str, env_name: str) -> ProjectConfig:
        from stacks.config import ConfigError
        from stacks.project_config import PROJECTS_DIR

        path = self.root / PROJECTS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(self.projects())
            raise ConfigError([(str(PROJECTS_DIR / f"{name}.yaml"), "(file)",
                                f"no such project; known: {', '.join(known) or 'none'}")])
        per_env = self.projects()[name]
        if env_name not in per_env:
            raise ConfigError([(str(PROJECTS_DIR / f"{name}.yaml"), "environments",
                                f"the project does not run in '{env_name}' (it lists {sorted(per_env)})")])
        return per_env[env_name]
