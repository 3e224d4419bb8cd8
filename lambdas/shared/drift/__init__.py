"""The drift engine: exact, vectorised drift statistics for the control loop's drift monitor.

Plain library (standard library, numpy, scipy; boto3 only inside the S3 capture reader):

    reference.py   the reference document: build_reference, validate_reference, prepare_reference
    engine.py      compare(prepared, current_columns) -> DriftResult (verdicts, BH, summary)
    numeric.py     KS statistic against a pre-sorted reference, quantile bins
    categorical.py category counting, chi-squared against reference counts
    statistics.py  p-values, chi-squared, PSI, Jensen-Shannon, Benjamini-Hochberg (== scipy)
    kolmogorov.py  scipy's asymptotic KS p-value without its O(n) scalar loop
    capture.py     SageMaker data-capture JSONL -> current window columns
    report.py      JSON report, self-contained HTML report, CloudWatch metric datums
"""

from lambdas.shared.drift.categorical import CategoricalCodes, category_key, count_categories
from lambdas.shared.drift.engine import (
    DriftConfig,
    DriftInputError,
    DriftResult,
    DriftSummary,
    FeatureDrift,
    Histogram,
    compare,
)
from lambdas.shared.drift.numeric import ks_two_sample
from lambdas.shared.drift.reference import (
    DEFAULT_MAX_VALUES,
    FORMAT,
    InvalidReferenceError,
    PreparedReference,
    build_reference,
    load_reference_json,
    prepare_reference,
    validate_reference,
)
from lambdas.shared.drift.statistics import (
    benjamini_hochberg,
    chi2_two_by_k,
    jensen_shannon_distance,
    ks_p_value,
    population_stability_index,
)

__all__ = [
    "DEFAULT_MAX_VALUES",
    "FORMAT",
    "CategoricalCodes",
    "DriftConfig",
    "DriftInputError",
    "DriftResult",
    "DriftSummary",
    "FeatureDrift",
    "Histogram",
    "InvalidReferenceError",
    "PreparedReference",
    "benjamini_hochberg",
    "build_reference",
    "category_key",
    "chi2_two_by_k",
    "compare",
    "count_categories",
    "jensen_shannon_distance",
    "ks_p_value",
    "ks_two_sample",
    "load_reference_json",
    "population_stability_index",
    "prepare_reference",
    "validate_reference",
]
