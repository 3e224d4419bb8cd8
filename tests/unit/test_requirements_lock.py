"""requirements.lock (what `make setup` installs) agrees with pyproject.toml's pins: a pin changed
in one and not the other would install a set nobody resolved (`make lock` re-resolves)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_pin_of_pyproject_is_locked_at_the_same_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    locked = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)", line)
        if match:
            locked[_name(match.group(1))] = match.group(2)
    for pin in pins:
        name, _, version = pin.partition("==")
        assert version, f"pyproject.toml: {pin!r} is not pinned with =="
        assert locked.get(_name(name)) == version.split(";")[0].strip(), (
            f"{pin}: requirements.lock has {locked.get(_name(name))}; run `make lock`")
    assert len(locked) > len(pins)  # the transitive set is pinned too
