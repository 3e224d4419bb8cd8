"""The cdktf App: what `cdktf synth` (npm CLI) and `mlops synth` both run.

One platform stack per environment in environments/, one stack per (project, environment) from
environments/projects/, one bootstrap stack per state account. A broken environment or project
file stops here with `file: field: reason` and exit code 2.
"""

import sys
from pathlib import Path

from mlops.project import Project
from stacks.config import ConfigError


def main() -> int:
    project = Project.discover(Path(__file__).resolve().parent)
    try:
        envs = project.environments()
        projects = project.projects()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from stacks.app import synth  # the binding import (~10 s) only after config is known good

    synth(envs, project.outdir, project.state_dir, projects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
