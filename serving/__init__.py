"""Adapter: the KServe predictor and its entry point (``python -m serving``)."""
