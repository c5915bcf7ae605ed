"""A drift result as Prometheus gauges: a registry to expose, a textfile, or a Pushgateway push.

Metrics (labels ``reference`` and ``current`` name the two windows):

- ``cvops_drift_share``: drifted features / tested features, 0..1.
- ``cvops_drift_detected``: 1 when the window drifted, else 0.
- ``cvops_drift_feature_drifted{feature, table}``: 1 when that feature drifted, else 0.
- ``cvops_drift_feature_score{feature, table, method}``: the test's p-value or distance.
- ``cvops_drift_frames{window}``: frames in the ``reference`` and ``current`` windows.
- ``cvops_drift_last_run_timestamp_seconds``: when the check finished (Unix time).

A drift check is a batch job, so its numbers reach Prometheus one of two ways: the textfile
(``drift.prom``) for node_exporter's textfile collector or any file-serving sidecar, or a push to
a Pushgateway (job ``cvops_drift``, grouped by the two labels so that each pair of windows keeps
its own series). A long-running server can instead register :func:`drift_registry`'s collectors.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from cvops.errors import InvalidInputError, MetricsPushError
from cvops.monitoring.results import DriftResult

PUSH_JOB = "cvops_drift"
_WINDOW_LABELS = ("reference", "current")


def drift_registry(result: DriftResult, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """Return a registry (a new one unless given) holding the drift gauges of ``result``."""
    registry = registry if registry is not None else CollectorRegistry()
    windows = (result.reference, result.current)
    share = Gauge(
        "cvops_drift_share",
        "Share of tested features that drifted (0..1).",
        _WINDOW_LABELS,
        registry=registry,
    )
    share.labels(*windows).set(result.drift_share)
    detected = Gauge(
        "cvops_drift_detected",
        "1 when the current window drifted from the reference.",
        _WINDOW_LABELS,
        registry=registry,
    )
    detected.labels(*windows).set(1.0 if result.is_drifted else 0.0)
    drifted = Gauge(
        "cvops_drift_feature_drifted",
        "1 when the feature drifted, else 0.",
        (*_WINDOW_LABELS, "feature", "table"),
        registry=registry,
    )
    score = Gauge(
        "cvops_drift_feature_score",
        "The feature's drift test value (p-value or distance, see method).",
        (*_WINDOW_LABELS, "feature", "table", "method"),
        registry=registry,
    )
    for feature in result.features:
        drifted.labels(*windows, feature.feature, feature.table).set(1.0 if feature.is_drifted else 0.0)
        score.labels(*windows, feature.feature, feature.table, feature.method).set(feature.score)
    frames = Gauge(
        "cvops_drift_frames",
        "Frames in each window of the check.",
        (*_WINDOW_LABELS, "window"),
        registry=registry,
    )
    frames.labels(*windows, "reference").set(result.reference_frames)
    frames.labels(*windows, "current").set(result.current_frames)
    finished = Gauge(
        "cvops_drift_last_run_timestamp_seconds",
        "When the drift check finished.",
        _WINDOW_LABELS,
        registry=registry,
    )
    finished.labels(*windows).set(time.time())
    return registry


def write_prometheus_textfile(result: DriftResult, path: Path) -> Path:
    """Write the gauges in Prometheus text format (atomically: a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), drift_registry(result))
    return path


def push_drift_metrics(result: DriftResult, gateway_url: str, *, timeout_s: float = 10.0) -> None:
    """Push the gauges to a Pushgateway, replacing the group of this pair of windows.

    Raises:
        InvalidInputError: For a URL that is not ``http(s)://``.
        MetricsPushError: When the Pushgateway cannot be reached or refuses the push.
    """
    if not gateway_url.startswith(("http://", "https://")):
        raise InvalidInputError(f"pushgateway: expected an http(s):// URL, got {gateway_url!r}")
    try:
        push_to_gateway(
            gateway_url,
            job=PUSH_JOB,
            registry=drift_registry(result),
            grouping_key={"reference": result.reference, "current": result.current},
            timeout=timeout_s,
        )
    except OSError as error:  # urllib's URLError and HTTPError are OSErrors
        raise MetricsPushError(f"pushgateway {gateway_url}: push failed: {error}") from error
