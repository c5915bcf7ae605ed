"""Monitoring: data drift between a reference and a current window of frames.

One call does a whole check (see :func:`cvops.monitoring.drift.detect_drift`)::

    from cvops.monitoring.drift import detect_drift

    result = detect_drift(reference_dir, current_dir, out_dir, model_dir)
    result.drift_share, result.is_drifted, result.drifted_features, result.html_paths

Modules: ``tables`` (per-frame and per-box feature tables), ``embedding`` (a cheap image
embedding), ``mmd`` (its two-sample test), ``evidently_report`` (per-column tests and the HTML
report), ``drift_metrics`` (Prometheus gauges, textfile, Pushgateway), ``candidates`` (frames
for active learning), ``model_events`` (drift tags on MLflow model versions), ``perturb``
(synthetic drift for validation), ``inputs`` (what a ``--reference``/``--current`` names).
"""
