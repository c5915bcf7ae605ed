"""Per-column drift tests of one table pair with Evidently 0.7, saved as HTML and JSON.

Numerical columns are tested with Kolmogorov-Smirnov (a p-value against 0.05) up to 1000
reference rows, and with Evidently's default above (normed Wasserstein distance against 0.1).
Categorical columns (class names) use a chi-square test of homogeneity on the 2 x K table of
counts (scipy's ``chi2_contingency``; classes with fewer than 5 boxes in both windows together
are pooled into one), registered with Evidently as ``chi2_contingency`` so it shows in the
report, its p-value against 0.05. Both replace Evidently's own chi-square, which it picks for
categorical columns and for numerical ones with at most 5 distinct values (detection counts):
that one takes the reference frequencies as expected counts, so one value seen only in the
current window (a rare COCO class detected once, a frame with one more box) gives p = 0 and a
false alarm. (Evidently's total variation distance test has a valid permutation p-value, but
its pure-pandas loop takes ~8 s per column here.) Each
column's verdict is Evidently's own (its ``ValueDrift`` test; the report runs with tests on).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed

from cvops.errors import InvalidInputError
from cvops.monitoring.results import FeatureDrift, FeatureTable

CATEGORICAL_METHOD = "chi2_contingency"
MIN_CATEGORY_COUNT = 5
KS_MAX_ROWS = 1000
P_VALUE_METHODS = frozenset({"ks", CATEGORICAL_METHOD})
CATEGORICAL_P_VALUE = 0.05


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str] = (),
    table: FeatureTable,
    html_path: Path,
    json_path: Path,
) -> list[FeatureDrift]:
    """Run Evidently's ``DataDriftPreset`` on the given columns; save the report; return each column's test.

    Args:
        reference: Reference rows.
        current: Current rows.
        numerical: Numerical columns to test (present in both tables).
        categorical: Categorical columns to test.
        table: Name of the table, recorded on each result.
        html_path: Where the self-contained HTML report is written.
        json_path: Where Evidently's JSON snapshot is written.

    Raises:
        InvalidInputError: When a side has fewer than 2 rows or a column is missing.
    """
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    _register_contingency_test()

    columns = [*numerical, *categorical]
    for name, frame in (("reference", reference), ("current", current)):
        if len(frame) < 2:
            raise InvalidInputError(f"{table} {name}: expected >= 2 rows for a drift test, got {len(frame)}")
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InvalidInputError(f"{table} {name}: expected columns {missing}, got {list(frame.columns)}")
    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    methods = {column: CATEGORICAL_METHOD for column in categorical}
    if len(reference) <= KS_MAX_ROWS:
        methods.update({column: "ks" for column in numerical})
    thresholds = {column: CATEGORICAL_P_VALUE for column in categorical}
    preset = DataDriftPreset(columns=columns, per_column_method=methods, per_column_threshold=thresholds)
    report = Report([preset], include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
        reference_data=Dataset.from_pandas(
            reference[columns].reset_index(drop=True), data_definition=definition
        ),
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    snapshot.save_json(str(json_path))
    return _value_drifts(snapshot.dict(), table)


def chi2_contingency_p_value(reference: pd.Series, current: pd.Series) -> float:
    """Return the p-value of a chi-square test that two samples of labels share one distribution.

    Categories with fewer than 5 values in both samples together are pooled into one (the
    chi-square approximation needs expected counts of about 5); with fewer than 2 categories
    left there is nothing to compare and the p-value is 1.
    """
    from scipy.stats import chi2_contingency  # type: ignore[import-untyped]

    counts = pd.DataFrame(
        {
            "reference": reference.dropna().astype(str).value_counts(),
            "current": current.dropna().astype(str).value_counts(),
        }
    ).fillna(0)
    rare = counts.sum(axis=1) < MIN_CATEGORY_COUNT
    table = counts[~rare]
    if rare.any():
        table = pd.concat([table, counts[rare].sum().to_frame().T])
    if len(table) < 2 or (table.sum(axis=0) == 0).any():
        return 1.0
    return float(chi2_contingency(table.to_numpy().T).pvalue)


def _register_contingency_test() -> None:
    """Make ``chi2_contingency`` a method name Evidently knows (registering again replaces it)."""
    from evidently.legacy.calculations.stattests.registry import (  # type: ignore[import-untyped]
        StatTest,
        register_stattest,
    )
    from evidently.legacy.core import ColumnType  # type: ignore[import-untyped]

    def test(
        reference: pd.Series, current: pd.Series, feature_type: object, threshold: float
    ) -> tuple[float, bool]:
        p_value = chi2_contingency_p_value(reference, current)
        return p_value, p_value < threshold

    stat_test = StatTest(
        name=CATEGORICAL_METHOD,
        display_name="chi-square contingency p_value",
        allowed_feature_types=[ColumnType.Categorical],
        default_threshold=CATEGORICAL_P_VALUE,
    )
    register_stattest(stat_test, test)


def _value_drifts(snapshot: dict[str, Any], table: FeatureTable) -> list[FeatureDrift]:
    """Read each column's verdict from Evidently's own ``ValueDrift`` test (FAIL means drifted)."""
    scores = {m.get("id"): m.get("value") for m in snapshot.get("metrics", [])}
    results: list[FeatureDrift] = []
    for test in snapshot.get("tests", []):
        config = test.get("metric_config", {})
        params = config.get("params", {})
        if params.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        score = scores.get(config.get("metric_id"))
        results.append(
            FeatureDrift(
                feature=str(params["column"]),
                table=table,
                method=str(params["method"]),
                score=math.nan if score is None else float(score),
                threshold=float(params["threshold"]),
                is_drifted=test.get("status") == "FAIL",
                is_p_value=str(params["method"]) in P_VALUE_METHODS or "p_value" in str(params["method"]),
            )
        )
    return results
