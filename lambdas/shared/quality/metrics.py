"""Model-quality metrics of one window, in pure Python (a few thousand labels at most per window).

Classification: the model's output is the positive-class score; a score above 0.5 is the positive
class (as the inference code's labels(): a 0.5 tie goes negative). ROC AUC is the Mann-Whitney
statistic with average ranks for ties, undefined (None) with a single class. Regression: MAE, RMSE
and R2 (None when the labels do not vary).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

POSITIVE_ABOVE = 0.5


def classification(labels: Sequence[int], scores: Sequence[float]) -> dict[str, float | None]:
    predicted = [1 if s > POSITIVE_ABOVE else 0 for s in scores]
    tp = sum(1 for y, p in zip(labels, predicted, strict=True) if y == 1 and p == 1)
    tn = sum(1 for y, p in zip(labels, predicted, strict=True) if y == 0 and p == 0)
    fp = sum(1 for y, p in zip(labels, predicted, strict=True) if y == 0 and p == 1)
    fn = len(labels) - tp - tn - fp
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall else None)
    return {
        "accuracy": (tp + tn) / len(labels) if labels else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(labels, scores),
    }


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    positives = sum(1 for y in labels if y == 1)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share their average rank
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y == 1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def regression(labels: Sequence[float], predictions: Sequence[float]) -> dict[str, float | None]:
    n = len(labels)
    if not n:
        return {"mae": None, "rmse": None, "r2": None}
    errors = [p - y for y, p in zip(labels, predictions, strict=True)]
    mean = sum(labels) / n
    total = sum((y - mean) ** 2 for y in labels)
    squared = sum(e * e for e in errors)
    return {
        "mae": sum(abs(e) for e in errors) / n,
        "rmse": math.sqrt(squared / n),
        "r2": 1 - squared / total if total else None,
    }


def quality_drop_percent(task: str, current: dict[str, float | None],
                         baseline: dict[str, float]) -> float | None:
    """How much worse the window is than the served package's evaluation, in percent of it:
    accuracy lost (classification), MAE gained (regression). None without both numbers."""
    metric = "accuracy" if task == "classification" else "mae"
    now, then = current.get(metric), baseline.get(metric)
    if now is None or not then:
        return None
    change = (then - now) if task == "classification" else (now - then)
    return 100.0 * change / then
