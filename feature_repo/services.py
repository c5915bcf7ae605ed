"""Feast feature services: what each consumer reads."""

from feast import FeatureService
from views import camera_window_features, frame_features

frame_selection = FeatureService(
    name="frame_selection",
    features=[frame_features, camera_window_features],
    description="Active-learning selection: a frame's own features and its camera's recent state.",
)

camera_health = FeatureService(
    name="camera_health",
    features=[camera_window_features],
    description="Monitoring: each camera's rate, load and image quality over the last minute.",
)
