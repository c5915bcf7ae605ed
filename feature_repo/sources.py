"""Feast sources: the parquet folders cvops writes (``cvops.features.offline_store``).

Paths are relative to the feature repository, which Feast resolves against the repository folder,
so a copied repository (``cvops.features.store.stage_feature_repo``) reads its own ``data/``.
Each folder holds one parquet file per flush; Feast reads the folder as one table.
"""

from feast import FileSource

frame_source = FileSource(
    name="frame_features_source",
    path="data/offline/frame_features",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Per-frame image statistics and detection summaries, written by the video pipeline.",
)

camera_window_source = FileSource(
    name="camera_window_features_source",
    path="data/offline/camera_window_features",
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Per-camera aggregates over 1-minute windows; the timestamp is the window's end.",
)
