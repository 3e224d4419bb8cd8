"""What a synth produced, per stack (light: the CLI reads it back without the cdktf binding)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StackInfo:
    name: str
    environment: str  # for a bootstrap stack, its first environment
    kind: str  # "bootstrap" | "replica" | "platform" | "project"
    dir: Path
