"""Where a checkout keeps its configuration, synthesized stacks and local working state."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stacks.config import Environment, load_environments

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
