"""Metrics: pure functions over detections and ground truth."""
