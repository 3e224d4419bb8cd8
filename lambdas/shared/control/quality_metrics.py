"""The accuracy-drop datapoints the rollback and retrain handlers read to tell a model that
changed from a world that did (history.accuracy_drop_cause).

`MLOps/ModelQuality` `AccuracyDropPercent` (dimension EndpointName) is what the model-quality
check publishes per window and the accuracy alarm watches. GetMetricData takes no resource-level
permission: the handlers' policy grants it on "*". Read at one-minute resolution (kept 15 days),
not the alarm's hourly period: a window's datapoint then carries the minute it was published
(its window's end), so "measured after the deployment took traffic" means what it says.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lambdas.shared.control.history import iso

NAMESPACE, METRIC = "MLOps/ModelQuality", "AccuracyDropPercent"


PERIOD_SECONDS = 60


def healthy_windows(
    cloudwatch: Any, endpoint: str, start: datetime, end: datetime, threshold: float
) -> list[str]:
    """The times (ISO) of the windows between `start` and `end` whose accuracy drop was at or
    under `threshold` (the alarm's: not breaching)."""
    found: list[str] = []
    kwargs: dict[str, Any] = {
        "MetricDataQueries": [{
            "Id": "drop",
            "MetricStat": {
                "Metric": {"Namespace": NAMESPACE, "MetricName": METRIC,
                           "Dimensions": [{"Name": "EndpointName", "Value": endpoint}]},
                "Period": PERIOD_SECONDS,
                "Stat": "Maximum",
            },
            "ReturnData": True,
        }],
        "StartTime": start,
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    while True:
        page = cloudwatch.get_metric_data(**kwargs)
        for result in page.get("MetricDataResults", []):
            found += [iso(t) for t, v in zip(result["Timestamps"], result["Values"], strict=True)
                      if v <= threshold]
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]
