"""The drift check as a sharded SageMaker Processing job, in three steps of one pipeline:

    ListDriftWindow   (1 instance)  the window's capture files (the keys the one-pass check reads)
                                    -> manifest.json (SageMaker's S3 manifest) + window.json
    CountDriftShard   (N instances) input: the manifest, S3DataDistributionType ShardedByS3Key, so
                                    each instance gets about 1/N of the files; it parses them as the
                                    one-pass check does and writes partial-<current_host>.npz
    MergeDriftShards  (1 instance)  adds the partials up (partial.py: exact), compares, and writes
                                    the report.json / report.html and MLOps/Drift metrics that the
                                    drift Lambda writes for the same window, at the same keys

Processing instances do not wait for each other, hence the merge is a step of its own. All
three compute the window from the same two values (the pipeline's WindowEnd parameter, else the
execution's start), so they agree on it. Settings come from the environment variables of the
drift Lambda (job.DriftSettings). An empty window still gets its report (insufficient data) and
CurrentRows=0: a manifest must name at least one object, so ListDriftWindow then names an empty
file of its own output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from lambdas.shared.capture_files import endpoint_capture_keys, parse_s3_uri
from lambdas.shared.drift.capture import CaptureParser, CaptureSchema
from lambdas.shared.drift.job import (
    DriftJobError,
    DriftSettings,
    Window,
    find_reference,
    parse_utc,
    report_and_publish,
)
from lambdas.shared.drift.partial import compare_partial, dumps, loads, merge, partial_of_window

MANIFEST, WINDOW_FILE, EMPTY_FILE = "manifest.json", "window.json", "none.jsonl"
PARTIAL_GLOB = "partial-*.npz"


def batch_window(settings: DriftSettings, window_end: str, started: str) -> Window:
    """The window of one run: ending at `window_end` when given (a re-check), else as the drift
    Lambda's for a schedule firing at `started`, whole minutes like EventBridge's event time."""
    if window_end.strip():
        return Window.ending_at(parse_utc(window_end), settings.window_minutes)
    return settings.window_for(parse_utc(started).replace(second=0, microsecond=0))


def list_window(s3: Any, settings: DriftSettings, window: Window, output: Path, output_uri: str) -> dict:
    """Writes the window's manifest and window.json into `output` (uploaded to `output_uri`)."""
    bucket, prefix = parse_s3_uri(settings.capture_s3_uri)
    endpoint_prefix = "/".join(p for p in (prefix.strip("/"), settings.endpoint_name) if p) + "/"
    keys = endpoint_capture_keys(s3, bucket, endpoint_prefix, window.since, window.until)
    output.mkdir(parents=True, exist_ok=True)
    if keys:
        manifest: list[Any] = [{"prefix": f"s3://{bucket}/{endpoint_prefix}"},
                               *(k[len(endpoint_prefix):] for k in keys)]
    else:
        (output / EMPTY_FILE).write_bytes(b"")
        manifest = [{"prefix": output_uri.rstrip("/") + "/"}, EMPTY_FILE]
    (output / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    listing = {**window.as_dict(), "objects": len(keys)}
    (output / WINDOW_FILE).write_text(json.dumps(listing), encoding="utf-8")
    return listing


def current_host(config_file: Path) -> str:
    """This instance's name in a Processing job (`/opt/ml/config/resourceconfig.json`:
    {"current_host": "algo-1", "hosts": ["algo-1", ...]})."""
    try:
        return str(json.loads(config_file.read_text(encoding="utf-8"))["current_host"])
    except (OSError, ValueError, KeyError) as exc:
        raise DriftJobError(f"{config_file}: no current_host ({type(exc).__name__}: {exc})") from None


def capture_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.jsonl") if p.is_file())


def count_shard(s3: Any, sagemaker: Any, settings: DriftSettings, window: Window, files: Iterable[Path],
                output: Path, host: str) -> Path:
    """One instance's partial of its capture files, as `output`/partial-<host>.npz."""
    _, prepared = find_reference(settings, s3, sagemaker)
    parser = CaptureParser(CaptureSchema.from_reference(prepared), window.since, window.until)
    n_files = 0
    for path in files:
        n_files += 1
        with path.open("rb") as handle:
            for line in handle:
                parser.feed(line)
    partial = partial_of_window(prepared, parser.result(n_objects=n_files))
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"partial-{host}.npz"
    target.write_bytes(dumps(partial))
    return target


def merge_shards(s3: Any, sagemaker: Any, cloudwatch: Any, settings: DriftSettings, window: Window,
                 partials: Path, listing: Path, *, publish: bool = True, now: datetime) -> dict[str, Any]:
    """Adds the shards' partials up, compares and writes what the one-pass check writes."""
    files = sorted(partials.rglob(PARTIAL_GLOB))
    if not files:
        raise DriftJobError(f"no {PARTIAL_GLOB} under {partials}: did CountDriftShard run?")
    source, prepared = find_reference(settings, s3, sagemaker)
    merged = merge(loads(f.read_bytes(), str(f)) for f in files)
    objects = int(json.loads((listing / WINDOW_FILE).read_text(encoding="utf-8"))["objects"])
    capture = merged.capture.as_window()
    capture.n_objects = objects  # not the files the shards read: an empty window reads a placeholder
    result = compare_partial(prepared, merged, settings.drift_config())
    summary = report_and_publish(settings, window, source, capture, result, s3=s3, cloudwatch=cloudwatch,
                                 publish=publish, now=now)
    return {**summary, "shards": len(files)}
