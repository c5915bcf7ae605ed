"""Feast feature views: per-frame features and per-camera 1-minute aggregates.

Names are snake_case with their unit: ``_gray`` on the 0..255 gray scale, ``_bits`` for entropy,
``_px`` for pixels, ``_s`` for seconds, ``_1m`` for the camera's last 1-minute window. Definitions
live in ``cvops.features.frame_features`` (the code that computes them).
"""

from datetime import timedelta

from entities import camera, frame
from feast import FeatureView, Field
from feast.types import Float32, Float64, Int64
from sources import camera_window_source, frame_source

frame_features = FeatureView(
    name="frame_features",
    entities=[camera, frame],
    ttl=timedelta(days=7),
    schema=[
        Field(name="brightness_gray", dtype=Float32, description="Mean gray level, 0..255."),
        Field(name="contrast_gray", dtype=Float32, description="Std of the gray levels, 0..255."),
        Field(name="blur_laplacian_var", dtype=Float32, description="Laplacian variance; low = blurred."),
        Field(name="detection_count", dtype=Int64, description="Boxes the detector kept."),
        Field(name="score_mean", dtype=Float32, description="Mean box score, 0..1; null without boxes."),
        Field(name="score_min", dtype=Float32, description="Lowest box score, 0..1; null without boxes."),
        Field(name="score_entropy_bits", dtype=Float32, description="Mean binary entropy of the scores."),
        Field(name="image_width_px", dtype=Int64),
        Field(name="image_height_px", dtype=Int64),
        Field(name="pts_s", dtype=Float64, description="Stream timestamp; null when the source has none."),
    ],
    source=frame_source,
    online=True,
    description="One row per processed frame.",
)

camera_window_features = FeatureView(
    name="camera_window_features",
    entities=[camera],
    ttl=timedelta(days=7),
    schema=[
        Field(name="frame_count_1m", dtype=Int64, description="Frames processed in the window."),
        Field(name="detection_count_mean_1m", dtype=Float32),
        Field(name="brightness_gray_mean_1m", dtype=Float32),
        Field(name="blur_laplacian_var_mean_1m", dtype=Float32),
        Field(name="fps_1m", dtype=Float32, description="Processed frames per second in the window."),
    ],
    source=camera_window_source,
    online=True,
    description="One row per camera per 1-minute window, stamped at the window's end.",
)
