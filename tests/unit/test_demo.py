"""The demo's plumbing without an AWS: what its phases print goes to the log and the live line,
a failing phase is marked and named, and the summary table carries every phase."""

from __future__ import annotations

import io
import sys

import pytest
from rich.console import Console
from rich.progress import Progress, TextColumn

from mlops.demo import CommandOutput, Phase, PhaseFailed, Story, summary_table
from mlops.project import Project


def test_command_output_logs_everything_and_reports_whole_lines():
    log, seen = io.StringIO(), []
    out = CommandOutput(log, seen.append)
    out.write("==> one\n  two")
    out.write(" halves\n\n")
    assert log.getvalue() == "==> one\n  two halves\n\n"
    assert seen == ["==> one", "two halves"]


def _story(tmp_path) -> tuple[Story, io.StringIO, io.StringIO]:
    screen, log = io.StringIO(), io.StringIO()
    display = Progress(TextColumn("{task.description}"), TextColumn("{task.fields[detail]}"),
                       console=Console(file=screen, width=200))
    return Story(Project(tmp_path), display, log), screen, log


def test_a_phase_sends_stderr_to_the_log_and_times_itself(tmp_path):
    story, _, log = _story(tmp_path)
    with story.display, story.phase("train v1") as phase:
        print("[1/6] ValidateData: ok", file=sys.stderr)
        phase.happened, phase.where = "v1 registered", "MLflow run 1"
    (done,) = story.phases
    assert done.ok is True and done.seconds >= 0
    assert "===== train v1 =====\n[1/6] ValidateData: ok\n" in log.getvalue()


def test_a_failed_phase_is_marked_with_its_reason_and_stops_the_story(tmp_path):
    story, _, _ = _story(tmp_path)
    with pytest.raises(PhaseFailed), story.display, story.phase("broken v2"):
        raise PhaseFailed("the canary did not catch v2")
    assert story.phases[0].ok is False
    assert story.phases[0].happened == "failed: the canary did not catch v2"


def test_the_summary_has_a_row_per_phase_with_where_to_look():
    phases = [Phase("gate", "v1 Approved", 0.4, "audit: action gate", True),
              Phase("broken v2", "failed: no", 3.0, "", False), Phase("drift warning")]
    screen = io.StringIO()
    Console(file=screen, width=200).print(summary_table(phases))
    text = screen.getvalue()
    for expected in ("phase", "what happened", "seconds", "where to look", "✓ gate", "✗ broken v2",
                     "- drift warning", "audit: action gate", "0.4"):
        assert expected in text
    assert phases[0].as_json() == {"phase": "gate", "happened": "v1 Approved", "seconds": 0.4,
                                   "where": "audit: action gate", "ok": True}
