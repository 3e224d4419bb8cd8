"""CloudWatch's metric storage, indexed: a query reads only its own metric's datapoints in its
time range.

moto keeps every datapoint ever written in one list and scans all of it for every period of every
query; with endpoint traffic producing six `AWS/SageMaker` datapoints per request, each alarm
evaluation would grow slower with every request served. Here the backend's list also files each
datapoint under (namespace, metric name), sorted by time, and GetMetricData / GetMetricStatistics
pick the datapoints of a query with a binary search. Results are those of moto's own code (the
same Statistics class, periods counted from StartTime, metric math through metric_math), except
that a MetricStat query matches its dimensions exactly, as CloudWatch identifies a metric by its
namespace, name and full dimension set (moto also dropped the namespace when dimensions were
given).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from moto.cloudwatch import models as cloudwatch_models
from moto.cloudwatch.exceptions import InvalidParameterValue, ValidationError

SeriesKey = tuple[str, str]


class _Series:
    def __init__(self) -> None:
        self.stamps: list[datetime] = []
        self.points: list[Any] = []

    def add(self, datum: Any) -> None:
        at = bisect.bisect_right(self.stamps, datum.timestamp)
        self.stamps.insert(at, datum.timestamp)
        self.points.insert(at, datum)

    def between(self, start: datetime, end: datetime) -> list[Any]:
        return self.points[bisect.bisect_left(self.stamps, start):bisect.bisect_left(self.stamps, end)]


class IndexedMetricData(list):
    """The backend's `metric_data` list, with every datum also filed by (namespace, name)."""

    def __init__(self, items: Iterable[Any] = ()):
        super().__init__()
        self.series: dict[SeriesKey, _Series] = {}
        # The server answers on many threads, and the endpoint runtime writes from its own: the
        # two lists of a series must never be seen half-updated.
        self.lock = threading.Lock()
        for item in items:
            self.append(item)

    def append(self, datum: Any) -> None:
        with self.lock:
            super().append(datum)
            self.series.setdefault((datum.namespace, datum.name), _Series()).add(datum)

    def between(self, namespace: str, name: str, start: datetime, end: datetime) -> list[Any]:
        with self.lock:
            series = self.series.get((namespace, name))
            return series.between(start, end) if series else []


def _store(backend: Any) -> IndexedMetricData:
    if not isinstance(backend.metric_data, IndexedMetricData):
        backend.metric_data = IndexedMetricData(backend.metric_data)
    return backend.metric_data


def _candidates(backend: Any, namespace: str, name: str, start: datetime, end: datetime) -> list[Any]:
    """This metric's datapoints in [start, end), oldest first: ours from the index, plus the few
    that moto computes on the fly for other services (aws_metric_data)."""
    found = _store(backend).between(namespace, name, start, end)
    extra = [md for md in backend.aws_metric_data
             if md.namespace == namespace and md.name == name and start <= md.timestamp < end]
    return sorted(found + extra, key=lambda md: md.timestamp) if extra else found


def _stat_query(backend: Any, query: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    metric_stat = query["MetricStat"]
    metric = metric_stat["Metric"]
    name, stat, unit = metric["MetricName"], metric_stat["Stat"], metric_stat.get("Unit")
    delta = timedelta(seconds=int(metric_stat["Period"]))
    # Compared as sets of (name, value): moto's Dimension orders inconsistently (its __lt__
    # compares a value with a name), so sorted lists matched or not by the order given.
    wanted = {(d["Name"], d["Value"]) for d in metric.get("Dimensions", [])}
    points = [md for md in _candidates(backend, metric["Namespace"], name, start, end)
              if {(d.name, d.value) for d in md.dimensions} == wanted and (not unit or md.unit == unit)]
    values: list[Any] = []
    stamps: list[datetime] = []
    period_start, index = start, 0
    while period_start <= end and index < len(points):
        period_end = period_start + delta
        bucket = []
        while index < len(points) and points[index].timestamp < period_end:
            if points[index].timestamp >= period_start:
                bucket.append(points[index])
            index += 1
        if bucket:
            stats = cloudwatch_models.Statistics([stat], period_start)
            stats.metric_data = bucket
            values.append(stats.get_statistics_for_type(stat))
            stamps.append(period_start)
        period_start = period_end
    return {"id": query["Id"], "label": query.get("Label") or f"{name} {stat}", "values": values,
            "timestamps": stamps, "status_code": "Complete"}


def get_metric_data(self: Any, queries: list[dict[str, Any]], start_time: datetime, end_time: datetime,
                    scan_by: str = "TimestampAscending") -> list[dict[str, Any]]:
    if any("Expression" in q and q["Expression"].startswith("SELECT") for q in queries):
        return _moto_get_metric_data(self, queries, start_time, end_time, scan_by)  # Metrics Insights
    start, end = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
    if start > end:
        raise ValidationError("The parameter EndTime must be greater than StartTime.")
    if start == end:
        raise ValidationError("The parameter StartTime must not equal parameter EndTime.")
    results, returned = [], []
    for query in (q for q in queries if "MetricStat" in q):
        result = _stat_query(self, query, start, end)
        if scan_by == "TimestampDescending":
            result["values"].reverse()
            result["timestamps"].reverse()
        results.append(result)
        if query.get("ReturnData", True):
            returned.append(result)
    for query in (q for q in queries if "Expression" in q):
        values, stamps = cloudwatch_models.parse_expression(query["Expression"], results)
        returned.append({"id": query["Id"], "label": query.get("Label") or query["Id"], "values": values,
                         "timestamps": stamps, "status_code": "Complete"})
    return returned


def get_metric_statistics(self: Any, namespace: str, metric_name: str, start_time: datetime,
                          end_time: datetime, period: int, stats: list[str],
                          dimensions: list[dict[str, str]], unit: str | None = None) -> list[Any]:
    start, end = start_time.replace(microsecond=0), end_time.replace(microsecond=0)
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    points = [md for md in _candidates(self, namespace, metric_name, start, end)
              if (not unit or md.unit == unit) and (not dimensions or md.filter(None, None, dimensions))]
    delta, data = timedelta(seconds=period), []
    index = 0
    period_start = points[0].timestamp if points else end
    while index < len(points):
        bucket = cloudwatch_models.Statistics(stats, period_start)
        while index < len(points) and points[index].timestamp < period_start + delta:
            bucket.metric_data.append(points[index])
            bucket.unit = points[index].unit
            index += 1
        if bucket.metric_data:
            data.append(bucket)
        period_start += delta
    return data


_moto_get_metric_data = cloudwatch_models.CloudWatchBackend.get_metric_data


def patch() -> None:
    cloudwatch_models.CloudWatchBackend.get_metric_data = get_metric_data
    cloudwatch_models.CloudWatchBackend.get_metric_statistics = get_metric_statistics
    original_init = cloudwatch_models.CloudWatchBackend.__init__

    def __init__(self: Any, region_name: str, account_id: str) -> None:
        original_init(self, region_name, account_id)
        self.metric_data = IndexedMetricData()

    cloudwatch_models.CloudWatchBackend.__init__ = __init__


def put_service_metrics(backend: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
    """Datapoints an AWS service publishes itself (the `AWS/` namespaces PutMetricData refuses):
    written straight into the backend, with moto's own datum classes."""
    store = _store(backend)
    for item in metric_data:
        store.append(cloudwatch_models.MetricDatum(
            namespace, item["MetricName"], float(item["Value"]), item.get("Dimensions", []),
            item["Timestamp"], item.get("Unit")))
